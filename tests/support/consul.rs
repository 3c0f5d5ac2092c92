//! A stand-in for a Consul agent's HTTP API, for tests over real sshd
//! hosts: the node's SSH-forwarded channel to `127.0.0.1:PORT` reaches it
//! as it would reach the node's agent.

/// A stand-in for one Consul agent's HTTP API on `127.0.0.1:PORT`, which
/// an sshd host on loopback forwards to as a node would to its agent: a
/// KV store (GET with `?recurse`, `?keys`, `?raw`; PUT with `?cas`;
/// DELETE), a server agent that sees a leader and `members`, or, with
/// `fail` set, that answer to every request.
pub struct FakeConsul {
    pub port: u16,
    pub fail: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// What `/v1/agent/members` lists: node names and Consul's status
    /// codes (1 alive, 4 failed). While it is empty, the agent's own
    /// endpoints (leader, self, members) answer 404 as a KV-only stand-in.
    pub members: std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>,
    /// The ACL tokens it knows: while set, as Consul with ACLs on, a
    /// request carrying another token (`X-Consul-Token`) is answered 403
    /// `ACL not found`, one carrying none 403 `Permission denied`.
    pub tokens: std::sync::Arc<std::sync::Mutex<Option<Vec<String>>>>,
}

type Kv = std::collections::BTreeMap<String, (Vec<u8>, u64)>;

impl FakeConsul {
    pub fn start() -> FakeConsul {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fail = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let kv = std::sync::Arc::new(std::sync::Mutex::new(Kv::new()));
        let members = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tokens = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<String>>));
        let (fail2, kv2, members2) = (fail.clone(), kv.clone(), members.clone());
        let tokens2 = tokens.clone();
        std::thread::spawn(move || {
            let mut index = 0u64;
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or(0);
                let (mut length, mut token) = (0, None::<String>);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if header.to_ascii_lowercase().starts_with("x-consul-token:") {
                        token = header.split_once(':').map(|(_, v)| v.trim().to_owned());
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap_or(());
                let mut words = line.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                index += 1;
                let refused = match (tokens2.lock().unwrap().as_ref(), &token) {
                    (None, _) => None,
                    (Some(_), None) => Some("Permission denied"),
                    (Some(known), Some(t)) => (!known.contains(t)).then_some("ACL not found"),
                };
                let (status, answer) = match fail2.lock().unwrap().clone() {
                    Some(text) => (500, text.into_bytes()),
                    None if refused.is_some() => (403, refused.unwrap().as_bytes().to_vec()),
                    None => match agent(target, &members2.lock().unwrap()) {
                        Some(answer) => (200, answer),
                        None => handle(&mut kv2.lock().unwrap(), method, target, body, index),
                    },
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = stream.write_all(&answer);
            }
        });
        FakeConsul {
            port,
            fail,
            members,
            tokens,
        }
    }
}

fn handle(kv: &mut Kv, method: &str, target: &str, body: Vec<u8>, index: u64) -> (u16, Vec<u8>) {
    use base64::Engine as _;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(key) = path.strip_prefix("/v1/kv/") else {
        return (404, Vec::new());
    };
    let flags: Vec<&str> = query.split('&').collect();
    let entry = |k: &String, (v, i): &(Vec<u8>, u64)| serde_json::json!({"Key": k, "Value": base64::engine::general_purpose::STANDARD.encode(v), "ModifyIndex": i, "CreateIndex": i, "Flags": 0, "LockIndex": 0});
    match method {
        "GET" => {
            let under: Vec<(&String, &(Vec<u8>, u64))> =
                kv.iter().filter(|(k, _)| k.starts_with(key)).collect();
            if flags.contains(&"keys") {
                let keys: Vec<&String> = under.iter().map(|(k, _)| *k).collect();
                return (200, serde_json::to_vec(&keys).unwrap());
            }
            if flags.contains(&"recurse") {
                if under.is_empty() {
                    return (404, Vec::new());
                }
                let list: Vec<_> = under.iter().map(|(k, v)| entry(k, v)).collect();
                return (200, serde_json::to_vec(&list).unwrap());
            }
            match kv.get_key_value(key) {
                None => (404, Vec::new()),
                Some((_, (v, _))) if flags.contains(&"raw") => (200, v.clone()),
                Some((k, v)) => (200, serde_json::to_vec(&[entry(k, v)]).unwrap()),
            }
        }
        "PUT" => {
            let cas = flags.iter().find_map(|f| f.strip_prefix("cas="));
            let ok = match cas.map(|c| c.parse::<u64>().unwrap()) {
                None => true,
                Some(0) => !kv.contains_key(key),
                Some(i) => kv.get(key).is_some_and(|(_, at)| *at == i),
            };
            if ok {
                kv.insert(key.to_owned(), (body, index));
            }
            (200, ok.to_string().into_bytes())
        }
        "DELETE" => {
            kv.retain(|k, _| k != key && !(flags.contains(&"recurse") && k.starts_with(key)));
            (200, b"true".to_vec())
        }
        _ => (405, Vec::new()),
    }
}

/// The agent's own endpoints: a server, a leader, `members` (none while
/// `members` is empty).
fn agent(target: &str, members: &[(String, u64)]) -> Option<Vec<u8>> {
    if members.is_empty() {
        return None;
    }
    let json = match target {
        "/v1/status/leader" => serde_json::json!("127.0.0.1:8300"),
        "/v1/agent/self" => {
            serde_json::json!({"Config": {"Server": true}, "Member": {"Status": 1}})
        }
        "/v1/agent/members" => members
            .iter()
            .map(|(name, status)| serde_json::json!({"Name": name, "Status": status}))
            .collect(),
        _ => return None,
    };
    Some(json.to_string().into_bytes())
}
