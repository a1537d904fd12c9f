//! Small demo origin for `make run`: answers every request with JSON describing it.
//!
//! Usage: `demo_backend NAME=ADDR [NAME=ADDR ...]`, e.g. `demo_backend users-1=127.0.0.1:9001`.
//! Serves `GET /health` with 200 as well. HTTP/1.1 keep-alive, bodies by Content-Length.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn main() -> std::io::Result<()> {
    let specs: Vec<String> = std::env::args().skip(1).collect();
    if specs.is_empty() {
        eprintln!("usage: demo_backend NAME=ADDR [NAME=ADDR ...]");
        std::process::exit(2);
    }
    // Every address is bound before any is served: one that is taken stops the whole set.
    let mut listeners = Vec::new();
    for spec in &specs {
        let (name, addr) = spec.split_once('=').unwrap_or(("demo", spec.as_str()));
        match TcpListener::bind(addr) {
            Ok(l) => listeners.push((name.to_owned(), l)),
            Err(e) => {
                eprintln!("demo_backend: cannot listen on {addr} ({name}): {e}");
                std::process::exit(1);
            }
        }
    }
    let mut threads = Vec::new();
    for (name, listener) in listeners {
        println!(
            "demo backend {name} listening on {}",
            listener.local_addr()?
        );
        threads.push(thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                thread::spawn(move || serve(stream, &name));
            }
        }));
    }
    println!("demo backends ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn serve(stream: TcpStream, name: &str) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut out = write_half;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.push(format!("{:?}:{:?}", k, v));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let json = format!(
            "{{\"backend\":{name:?},\"method\":{method:?},\"path\":{target:?},\"headers\":{{{}}},\"body_bytes\":{length}}}\n",
            headers.join(",")
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        if out.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}
