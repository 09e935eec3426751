//! Instructions per request under `valgrind --tool=callgrind`: deterministic where requests/s
//! are noisy. A server runs under callgrind; for each scenario a warm-up, a dump (which also
//! zeroes the counters), `n` requests on one keep-alive connection, and a second dump, whose
//! total divided by `n` is the cost of one request with start-up left out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::client::{self, Scenario};
use crate::contestants::{Contestant, Kind, Setup};

/// Requests before the counters are zeroed, and requests counted.
const WARMUP: usize = 50;
const COUNTED: usize = 500;

/// Whether valgrind and callgrind_control are installed.
pub(crate) fn available() -> bool {
    ["valgrind", "callgrind_control"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok())
}

/// Per request of each scenario, under callgrind, for `contestant`; a scenario that could not
/// be counted is `Err` with the reason, the others are kept.
pub(crate) async fn per_request(
    setup: &Setup,
    contestant: &Contestant,
    scenarios: &[Scenario],
) -> Result<Vec<Result<f64, String>>, String> {
    let out = setup.work.join(format!("callgrind-{}.out", contestant.key));
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let server = setup.start(contestant, &wrapper).await?;
    if !matches!(contestant.kind, Kind::Scale(_)) {
        server.seed().await?;
    }
    let pid = server.child.id();
    let mut dumps = 0;
    let mut counts = Vec::new();
    for scenario in scenarios {
        let counted = async {
            let mut connection = client::Connection::open(server.addr).await?;
            let wire = scenario.wire();
            let head = scenario.method == "HEAD";
            for _ in 0..WARMUP {
                connection.exchange(&wire, head).await?;
            }
            dumps += 1;
            dump(pid, &numbered(&out, dumps)).await?;
            for i in 0..COUNTED {
                let status = connection.exchange(&wire, head).await?;
                if status != scenario.expect {
                    return Err(format!("request {i} answered {status}"));
                }
            }
            dumps += 1;
            let total = dump(pid, &numbered(&out, dumps)).await?;
            Ok(total as f64 / COUNTED as f64)
        }
        .await;
        counts.push(counted.map_err(|e| format!("{}: {e}", scenario.name)));
    }
    drop(server);
    for i in 0..=dumps {
        let _ = std::fs::remove_file(numbered(&out, i));
    }
    Ok(counts)
}

/// callgrind's n-th dump of `out` (`out` itself for 0, the final dump at exit).
fn numbered(out: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return out.to_path_buf();
    }
    PathBuf::from(format!("{}.{n}", out.display()))
}

/// Asks callgrind in `pid` for a dump, waits for `file`, and reads its total.
async fn dump(pid: u32, file: &Path) -> Result<u64, String> {
    let status = tokio::task::spawn_blocking(move || {
        Command::new("callgrind_control")
            .arg("--dump")
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("callgrind_control did not run: {e}"))?;
    if !status.success() {
        return Err(format!("callgrind_control --dump {pid} failed: {status}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(total) = std::fs::read_to_string(file).ok().and_then(|t| total(&t)) {
            return Ok(total);
        }
        if Instant::now() > deadline {
            return Err(format!("{}: no dump within 30 s", file.display()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The instruction total of a complete callgrind dump (its last line).
fn total(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
