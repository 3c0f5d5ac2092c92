//! `arpanet services`: what the cluster announces, as Consul's catalog has
//! it: each service, its instances (node, address:port), their health, who
//! registered them (the `stack`, the watcher, something else) and the
//! Connect upstreams a stack entry declared. Asked of the first node whose
//! agent answers (servers first), through a channel forwarded over SSH; it
//! changes nothing.

use serde::Serialize;
use serde_json::Value;

use super::stack::{META_OWNER, META_UPSTREAMS};
use super::{consul_api, first_agent, ordered_hosts};
use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::report::OutputFormat;
use crate::session::{self, Session};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub service: String,
    pub node: String,
    pub address: String,
    pub port: u64,
    /// `passing`, `warning` or `critical`: the worst of its checks (and
    /// its node's), `passing` without any.
    pub health: String,
    /// `stack`, `watcher`, or `other`.
    pub source: String,
    pub tags: Vec<String>,
    /// `SERVICE:LOCALPORT` of each declared upstream.
    pub upstreams: Vec<String>,
}

/// One health row (`/v1/health/service/NAME`) as an [`Instance`].
fn instance(row: &Value) -> Instance {
    let service = &row["Service"];
    let mut health = "passing";
    for check in row["Checks"].as_array().into_iter().flatten() {
        match check["Status"].as_str() {
            Some("critical") => health = "critical",
            Some("warning") if health == "passing" => health = "warning",
            _ => {}
        }
    }
    let address = service["Address"]
        .as_str()
        .filter(|a| !a.is_empty())
        .or_else(|| row["Node"]["Address"].as_str())
        .unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    Instance {
        service: service["Service"].as_str().unwrap_or_default().to_owned(),
        node: row["Node"]["Node"].as_str().unwrap_or_default().to_owned(),
        address: address.to_owned(),
        port: service["Port"].as_u64().unwrap_or(0),
        health: health.to_owned(),
        source: service["Meta"][META_OWNER]
            .as_str()
            .unwrap_or("other")
            .to_owned(),
        tags: strings(&service["Tags"]),
        upstreams: service["Meta"][META_UPSTREAMS]
            .as_str()
            .map(|u| {
                u.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Print every service's instances; exit 0, or 2 when no agent answers.
pub fn services(connect: &ConnectOptions, format: OutputFormat, verbose: bool) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = ordered_hosts(&session)?;
    let connector = session.connector();
    let instances = session::runtime()?.block_on(async {
        let (host, conn, port) = first_agent(&connector, &hosts, verbose).await?;
        // A failed read leaves the request without a token (Consul says 403).
        let _ = super::acl::learn(&host.vars, conn.as_ref(), &host.name).await;
        let token = super::acl::token(&host.vars)?;
        let get = |path: String| {
            let conn = conn.clone();
            let name = host.name.clone();
            let token = token.clone();
            async move {
                let r = consul_api::request(
                    &name,
                    conn.as_ref(),
                    port,
                    "GET",
                    &path,
                    None,
                    token.as_deref(),
                )
                .await?;
                if r.status != 200 {
                    return Err(Error::Remote {
                        host: name,
                        message: format!(
                            "consul: GET {path}: HTTP {}: {}",
                            r.status,
                            r.text().trim()
                        ),
                    });
                }
                serde_json::from_slice::<Value>(&r.body).map_err(|e| Error::Remote {
                    host: name,
                    message: format!("consul: GET {path}: {e}"),
                })
            }
        };
        let names = get("/v1/catalog/services".into()).await?;
        let mut out = Vec::new();
        for name in names.as_object().into_iter().flatten().map(|(k, _)| k) {
            let rows = get(format!("/v1/health/service/{name}")).await?;
            out.extend(rows.as_array().into_iter().flatten().map(instance));
        }
        conn.close().await;
        Ok::<_, Error>(out)
    })?;
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&instances).unwrap_or_default()
        ),
        OutputFormat::Human => print!("{}", table(&instances)),
    }
    Ok(exit::OK)
}

/// One line per instance, columns padded to fit.
pub fn table(rows: &[Instance]) -> String {
    let mut cells: Vec<[String; 6]> = vec![[
        "SERVICE",
        "NODE",
        "ADDRESS",
        "HEALTH",
        "SOURCE",
        "UPSTREAMS",
    ]
    .map(str::to_owned)];
    for r in rows {
        let upstreams = if r.upstreams.is_empty() {
            "-".to_owned()
        } else {
            r.upstreams.join(", ")
        };
        cells.push([
            r.service.clone(),
            r.node.clone(),
            format!("{}:{}", r.address, r.port),
            r.health.clone(),
            r.source.clone(),
            upstreams,
        ]);
    }
    super::columns(&cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_instance_takes_its_worst_check_and_its_source() {
        let row = json!({
            "Node": {"Node": "node1", "Address": "10.0.0.1"},
            "Service": {"Service": "web", "Address": "", "Port": 8081, "Tags": ["v1"],
                        "Meta": {"arpanet": "stack", "arpanet_upstreams": "db:5432"}},
            "Checks": [{"Status": "passing"}, {"Status": "critical"}, {"Status": "warning"}],
        });
        let i = instance(&row);
        assert_eq!(i.address, "10.0.0.1");
        assert_eq!(i.health, "critical");
        assert_eq!(i.source, "stack");
        assert_eq!(i.upstreams, ["db:5432"]);
        assert_eq!(
            table(&[i]),
            "SERVICE  NODE   ADDRESS        HEALTH    SOURCE  UPSTREAMS\n\
             web      node1  10.0.0.1:8081  critical  stack   db:5432\n"
        );
        let other = instance(
            &json!({"Node": {"Node": "n"}, "Service": {"Service": "x", "Address": "1.2.3.4", "Port": 1}}),
        );
        assert_eq!(
            (other.health.as_str(), other.source.as_str()),
            ("passing", "other")
        );
    }
}
