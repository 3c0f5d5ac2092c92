//! `arpanet history [N]`: the deployed records the cluster keeps (see
//! `cluster::deployed`), newest last, or one record in full. Env values
//! are shown as `***`.

use super::{connect_options, output_format};
use crate::cli::HistoryArgs;
use crate::cluster::deployed::{self, Record};
use crate::error::{exit, Error, Result};
use crate::report::OutputFormat;

pub(crate) fn run(args: HistoryArgs) -> Result<i32> {
    let connect = connect_options(&args.connect)?;
    let found = deployed::read(&connect, true)?;
    if !found.cluster {
        return Err(Error::usage(
            "no Consul agent answered on any node, and the records live in the cluster's \
                 KV: it is stopped (`arpanet run stop`) or not made yet",
        )
        .with_hint(
            "`arpanet run bootstrap` starts a stopped cluster again, records and all (its \
                 data stays on the servers), or makes a new one with its first record; \
                 `arpanet status` shows each node",
        ));
    }
    let current = found.current.as_ref().map(|r| r.number);
    let json = output_format(args.connect.output) == OutputFormat::Json;
    match args.number {
        Some(n) => {
            let record = found
                .history
                .iter()
                .find(|r| r.number == n)
                .ok_or_else(|| {
                    Error::usage(format!("no record #{n} in the cluster's history"))
                        .with_hint("`arpanet history` lists the records kept")
                })?
                .masked();
            if json {
                println!("{}", to_json(&record)?);
            } else {
                print!("{}", full(&record, current == Some(n)));
            }
        }
        None if json => {
            let list: Vec<Record> = found.history.iter().map(Record::masked).collect();
            println!("{}", to_json(&list)?);
        }
        None => print!("{}", table(&found.history, current)),
    }
    Ok(exit::OK)
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))
}

/// One line per record: number (`*` the current), when, who, command, and
/// what changed.
fn table(records: &[Record], current: Option<u64>) -> String {
    if records.is_empty() {
        return "no deployed records yet\n".to_owned();
    }
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            let mark = if Some(r.number) == current { "*" } else { " " };
            [
                format!("{mark}{}", r.number),
                r.time.clone(),
                r.who.clone(),
                r.command.clone(),
                summary(r),
            ]
        })
        .collect();
    let header = ["  #", "when", "who", "command", "changes"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        out.push_str(&format!(
            "{:>w0$}  {:w1$}  {:w2$}  {:w3$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        ));
    }
    out
}

fn summary(r: &Record) -> String {
    let mut text = r.changes.join("; ");
    if let Some(n) = r.rollback_of {
        text = format!("rollback to #{n}: {text}");
    }
    text
}

/// One record in full (already masked).
fn full(r: &Record, current: bool) -> String {
    let mut out = format!(
        "record #{}{}\nwhen:      {}\nwho:       {}\ncommand:   {}\nplaybooks: {}\n",
        r.number,
        if current { " (current)" } else { "" },
        r.time,
        r.who,
        r.command,
        r.playbooks.join(", ")
    );
    if let Some(n) = r.rollback_of {
        out.push_str(&format!("rollback of: #{n}\n"));
    }
    out.push_str("changes:\n");
    for change in &r.changes {
        out.push_str(&format!("  {change}\n"));
    }
    out.push_str("values:\n");
    let values = serde_norway::to_string(&r.values).unwrap_or_default();
    for line in values.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// After a run: say which record it made, if any (stderr, as logs are).
pub(crate) fn announce(record: Option<&Record>) {
    if let Some(r) = record {
        eprintln!(
            "recorded what is deployed as #{} in the cluster: {}",
            r.number,
            summary(r)
        );
    }
}
