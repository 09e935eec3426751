//! Scale: backends of 1, 10 and 100 generated plugins (`scale-<n>`), each plugin with a
//! database, a table made at start-up and three routes. Reports the time to readiness and RSS
//! (median of three starts), that every plugin answers, and the instructions per request of one
//! plugin's routes, which must not grow with the number of plugins.

use serde_json::{Value, json};

use crate::client::Scenario;
use crate::contestants::{Contestant, Kind, STATIC_TOKEN, Setup};
use crate::instructions;

pub(crate) const SIZES: [usize; 3] = [1, 10, 100];
const STARTS: usize = 3;

fn contestant(n: usize) -> Contestant {
    Contestant {
        key: match n {
            1 => "scale-1",
            10 => "scale-10",
            _ => "scale-100",
        },
        about: "generated plugins",
        kind: Kind::Scale(n),
        env: vec![("LOG_LEVEL", "warn")],
        config: Value::Null,
        only: None,
    }
}

fn scenarios() -> [Scenario; 2] {
    [
        Scenario {
            name: "GET /api/p001/health",
            method: "GET",
            path: "/api/p001/health",
            token: None,
            body: None,
            expect: 200,
            headline: false,
        },
        Scenario {
            name: "GET /api/p001/items (static token)",
            method: "GET",
            path: "/api/p001/items",
            token: Some(STATIC_TOKEN.into()),
            body: None,
            expect: 200,
            headline: false,
        },
    ]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Start-up and RSS of a backend of `n` plugins, and a check that every plugin serves.
pub(crate) async fn startup(setup: &Setup, n: usize) -> Result<Value, String> {
    let contestant = contestant(n);
    let (mut ready, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let server = setup.start(&contestant, &setup.pin).await?;
        ready.push(server.ready_after.as_secs_f64() * 1000.0);
        rss.push(server.rss_kib() as f64 / 1024.0);
        for i in 1..=n {
            let (status, _) = server
                .request(
                    "GET",
                    &format!("/api/p{i:03}/items"),
                    Some(STATIC_TOKEN),
                    None,
                )
                .await?;
            if status != 200 {
                return Err(format!(
                    "{}: /api/p{i:03}/items answered {status}",
                    contestant.key
                ));
            }
        }
    }
    Ok(json!({"plugins": n, "ready_ms": median(ready), "rss_mib": median(rss)}))
}

/// Instructions per request of plugin `p001`'s routes in a backend of `n` plugins.
pub(crate) async fn per_request(setup: &Setup, n: usize) -> Result<Value, String> {
    let scenarios = scenarios();
    let counts = instructions::per_request(setup, &contestant(n), &scenarios).await?;
    let mut out = serde_json::Map::new();
    for (scenario, count) in scenarios.iter().zip(counts) {
        out.insert(scenario.name.to_owned(), json!(count?));
    }
    Ok(json!({"plugins": n, "instructions_per_request": out}))
}
