//! Talking to a node's Consul HTTP API through a channel forwarded over the
//! SSH connection, so no Consul port has to be opened to the network. A
//! small HTTP/1.1 client is enough: one request per channel, then close.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::transport::Transport;

/// A Consul HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long one request may take before the agent counts as not answering.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Send one request to `127.0.0.1:port` as seen from the host, with
/// `token` (a Consul ACL token) in the `X-Consul-Token` header: never in
/// the URL, which Consul may log, and never shown.
pub async fn request(
    host: &str,
    transport: &dyn Transport,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> Result<Response> {
    within(TIMEOUT, host, transport, port, method, path, body, token).await
}

/// Whether the agent on the host answers its HTTP API at all (any status,
/// even "no leader"), within a few seconds.
pub(crate) async fn answers(host: &str, transport: &dyn Transport, port: u16) -> Result<()> {
    let probe = std::time::Duration::from_secs(3);
    within(
        probe,
        host,
        transport,
        port,
        "GET",
        "/v1/status/leader",
        None,
        None,
    )
    .await
    .map(|_| ())
}

#[allow(clippy::too_many_arguments)]
async fn within(
    limit: std::time::Duration,
    host: &str,
    transport: &dyn Transport,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> Result<Response> {
    let sent = send(host, transport, port, method, path, body, token);
    tokio::time::timeout(limit, sent).await.unwrap_or_else(|_| {
        Err(Error::Remote {
            host: host.to_owned(),
            message: format!(
                "consul's HTTP API on port {port} did not answer within {}s",
                limit.as_secs()
            ),
        })
    })
}

async fn send(
    host: &str,
    transport: &dyn Transport,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> Result<Response> {
    let mut stream = transport
        .forward("127.0.0.1", port)
        .await
        .map_err(|e| match e {
            Error::Unreachable { .. } => e,
            Error::Remote { message, .. } => Error::Remote {
                host: host.to_owned(),
                message: format!("{NO_AGENT} on port {port}: {message}"),
            },
            other => Error::Remote {
                host: host.to_owned(),
                message: format!("{NO_AGENT} on port {port}: {other}"),
            },
        })?;
    let body = body.unwrap_or_default();
    let token = match token {
        Some(token) => format!("X-Consul-Token: {token}\r\n"),
        None => String::new(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: arpanet\r\n{token}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let io = |e: std::io::Error| Error::Remote {
        host: host.to_owned(),
        message: format!("consul HTTP API: {e}"),
    };
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(io)?;
    parse(&raw).ok_or_else(|| Error::Remote {
        host: host.to_owned(),
        message: format!(
            "consul sent a malformed HTTP response ({} bytes)",
            raw.len()
        ),
    })
}

/// Whether `err` says no Consul agent listens on the node (the forwarded
/// channel was refused), as opposed to an agent that answered badly.
pub(crate) fn no_agent(err: &Error) -> bool {
    matches!(err, Error::Remote { message, .. } if message.starts_with(NO_AGENT))
}

const NO_AGENT: &str = "cannot reach consul's HTTP API";

/// What arpanet says when Consul did not answer one of its own requests
/// as asked: the status and Consul's words; on a 403, that Consul refused
/// the ACL token the request carried and where that token came from
/// (`token`, as [`super::acl::token_origin`] words it; `None`: the request
/// carried none), with what to do about it.
pub(crate) fn answer_error(r: &Response, token: Option<&str>) -> String {
    let text = r.text();
    let said = text.trim();
    if r.status != 403 {
        return format!("consul answered {}: {said}", r.status);
    }
    match token {
        Some(origin) if said.contains("ACL not found") => format!(
            "consul refused the ACL token from {origin} (HTTP 403: {said}): the cluster does \
             not know it (replaced by `arpanet rotate --tokens` from another checkout, or this \
             checkout is another cluster's); copy `acl-management.token` from the checkout that \
             holds the cluster's, or remove this one and arpanet reads the servers' copy"
        ),
        Some(origin) => format!(
            "consul refused the ACL token from {origin} (HTTP 403: {said}): it does not allow \
             this request"
        ),
        None => format!(
            "consul refused the request (HTTP 403: {said}): it carried no ACL token, since this \
             checkout has no `acl-management.token` and no server gave one"
        ),
    }
}

/// Parse a complete HTTP/1.1 response (Content-Length, chunked, or
/// read-until-close bodies).
pub fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            "content-length" => length = value.trim().parse::<usize>().ok(),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(n) => rest.get(..n)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `text` for a URL path: every byte but the unreserved ones (and those in
/// `keep`, `/` for a KV key) as `%XX`.
pub(crate) fn percent_encoded(text: &str, keep: &[u8]) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b if keep.contains(&b) => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `/v1/kv/...` for `key` under `prefix`, with Consul's query flags. The old
/// tool's `key?recurse` form is accepted.
pub fn kv_path(prefix: &str, key: &str, recurse: bool, extra: &str) -> String {
    let (key, recurse) = match key.strip_suffix("?recurse") {
        Some(k) => (k, true),
        None => (key, recurse),
    };
    let mut joined = [prefix.trim_matches('/'), key.trim_start_matches('/')]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    // A tree or a listing means the folder: `app/`, so `apple` is not in it.
    if (recurse || extra == "keys") && !joined.is_empty() && !joined.ends_with('/') {
        joined.push('/');
    }
    let encoded = percent_encoded(&joined, b"/");
    let mut flags: Vec<&str> = Vec::new();
    if recurse {
        flags.push("recurse");
    }
    if !extra.is_empty() {
        flags.push(extra);
    }
    let query = if flags.is_empty() {
        String::new()
    } else {
        format!("?{}", flags.join("&"))
    };
    format!("/v1/kv/{encoded}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_named_with_its_file_and_other_answers_keep_their_words() {
        let answer = |status, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        let file = "`/home/alice/cluster/consul-tls/acl-management.token`";
        let said = answer_error(&answer(403, "ACL not found\n"), Some(file));
        assert!(
            said.starts_with(&format!(
                "consul refused the ACL token from {file} (HTTP 403: ACL not found)"
            )),
            "{said}"
        );
        assert!(
            !said.contains('\n') && said.contains("rotate --tokens"),
            "{said}"
        );
        let said = answer_error(&answer(403, "Permission denied"), Some(file));
        assert!(
            said.contains(file) && said.contains("Permission denied") && !said.contains("rotate"),
            "{said}"
        );
        let said = answer_error(&answer(403, "Permission denied"), None);
        assert!(said.contains("carried no ACL token"), "{said}");
        assert_eq!(
            answer_error(&answer(500, "No cluster leader\n"), Some(file)),
            "consul answered 500: No cluster leader"
        );
    }

    #[test]
    fn responses_parse_with_length_chunks_or_close() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrueXX").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "true"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.text(), "abcde");
        let r = parse(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
        assert!(parse(b"garbage").is_none());
    }

    #[test]
    fn kv_paths_join_the_prefix_and_take_the_old_recurse_form() {
        assert_eq!(
            kv_path("/arpanet", "app/x", false, ""),
            "/v1/kv/arpanet/app/x"
        );
        assert_eq!(
            kv_path("/arpanet", "app?recurse", false, ""),
            "/v1/kv/arpanet/app/?recurse"
        );
        assert_eq!(
            kv_path("/arpanet", "", false, "keys"),
            "/v1/kv/arpanet/?keys"
        );
        assert_eq!(
            kv_path("", "a b", true, "keys"),
            "/v1/kv/a%20b/?recurse&keys"
        );
    }
}
