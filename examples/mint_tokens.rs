//! Prints RS256 access tokens signed with an issuer's private key, one per line, each for a
//! different subject and `jti`, valid for an hour. `make bench` uses them for the cold-token
//! scenario (every request a token the gateway has not verified before).
//!
//! Usage: `mint_tokens PRIVATE_KEY_PEM COUNT ISSUER AUDIENCE`

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    roles: [&'a str; 1],
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(key), Some(count), Some(iss), Some(aud)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
        args.get(3),
        args.get(4),
    ) else {
        eprintln!("usage: mint_tokens PRIVATE_KEY_PEM COUNT ISSUER AUDIENCE");
        std::process::exit(2);
    };
    let key = std::fs::read(key)
        .map_err(|e| e.to_string())
        .and_then(|pem| EncodingKey::from_rsa_pem(&pem).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            eprintln!("mint_tokens: {key}: {e}");
            std::process::exit(1);
        });
    api_gateway::install_jwt_crypto();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = Header::new(Algorithm::RS256);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for n in 0..count {
        let claims = Claims {
            sub: format!("client-{n}"),
            roles: ["user"],
            iss,
            aud,
            iat: now,
            exp: now + 3600,
            jti: format!("bench-{n}"),
        };
        match encode(&header, &claims, &key) {
            Ok(token) => {
                let _ = writeln!(out, "{token}");
            }
            Err(e) => {
                eprintln!("mint_tokens: {e}");
                std::process::exit(1);
            }
        }
    }
}
