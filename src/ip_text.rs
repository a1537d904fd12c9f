//! An address as text on the stack, as its `Display` writes it; IPv4 without `fmt` (the
//! request path writes the client's address into `X-Forwarded-For`, limiter keys and the
//! access line).

use std::net::IpAddr;

/// The text of an address: at most 45 bytes (IPv6 with an embedded IPv4 address).
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub fn new(ip: IpAddr) -> IpText {
        let mut out = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    if octet >= 100 {
                        out.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        out.push(b'0' + octet / 10 % 10);
                    }
                    out.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(_) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut out.buf[..]);
                if write!(cursor, "{ip}").is_ok() {
                    out.len = cursor.position() as usize;
                }
            }
        }
        out
    }

    /// At most 15 bytes for IPv4, within the buffer.
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    pub fn as_str(&self) -> &str {
        // Digits, dots, hex digits and colons: always UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn reads_as_display_writes_it() {
        for o in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(o, 0, o, 255),
                Ipv4Addr::new(255, o, 9, o),
                Ipv4Addr::new(o, o, o, o),
            ] {
                assert_eq!(IpText::new(ip.into()).as_str(), ip.to_string());
            }
        }
        for text in [
            "::",
            "::1",
            "2001:db8::7",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let ip: Ipv6Addr = text.parse().expect("ip");
            assert_eq!(IpText::new(ip.into()).as_str(), ip.to_string());
        }
    }
}
