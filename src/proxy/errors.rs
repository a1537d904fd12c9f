//! Which of the contract's errors a pingora error becomes.

use crate::outcome::ErrorCode;
use pingora::prelude::*;

/// The error answer for `e`, or `None` when the client went away (nothing to answer).
pub fn classify(e: &Error) -> Option<ErrorCode> {
    match e.etype() {
        HTTPStatus(status) => Some(ErrorCode::from_status(*status)),
        ConnectTimedout | ReadTimedout | WriteTimedout => Some(ErrorCode::UpstreamTimeout),
        _ => match e.esource() {
            ErrorSource::Upstream => Some(ErrorCode::BadGateway),
            ErrorSource::Downstream => match e.etype() {
                ReadError | WriteError | ConnectionClosed => None,
                _ => Some(ErrorCode::BadRequest),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(ErrorCode::Internal),
        },
    }
}

/// A client that went away mid-request: routine, not an error of the gateway.
pub fn client_gone(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(e.etype(), ConnectionClosed | ReadError | WriteError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_contract_codes() {
        let status = Error::explain(HTTPStatus(413), "too big");
        assert_eq!(classify(&status), Some(ErrorCode::PayloadTooLarge));
        let timeout = Error::explain(ReadTimedout, "slow");
        assert_eq!(classify(&timeout), Some(ErrorCode::UpstreamTimeout));
        let refused = Error::new_up(ConnectRefused);
        assert_eq!(classify(&refused), Some(ErrorCode::BadGateway));
        let gone = Error::new_down(ConnectionClosed);
        assert_eq!(classify(&gone), None);
        assert!(client_gone(&gone));
        let bad = Error::new_down(InvalidHTTPHeader);
        assert_eq!(classify(&bad), Some(ErrorCode::BadRequest));
        assert!(!client_gone(&bad));
    }
}
