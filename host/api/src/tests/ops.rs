//! The Grafana board and the Prometheus alert rules of `docs/ops`
//! against the real `/metrics`: their structure, and every metric and
//! label their PromQL names is one the router exports, so a renamed
//! metric breaks this test. `promtool check rules` also parses the
//! board's queries when it is installed (`scripts/test.sh` installs it).

use std::collections::BTreeSet;

use super::*;

const BOARD: &str = include_str!("../../../../docs/ops/grafana-dashboard.json");
const RULES: &str = include_str!("../../../../docs/ops/prometheus-alerts.yml");

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// PromQL words that are not metric names: aggregations (followed by
/// `by`/`without` rather than a parenthesis), set operators, modifiers.
const KEYWORDS: [&str; 20] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
];

/// Keywords followed by a list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Metric names and label names a PromQL expression uses. Every
/// identifier outside strings, `{}` matchers and `[]` ranges that is not
/// followed by `(` (a function) nor a keyword is a metric name; matcher
/// keys and grouping lists are label names.
fn promql_names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            // Matchers: `key op "value"`, comma-separated.
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                    i = skip_string(i);
                } else if is_start(chars[i]) {
                    let start = i;
                    while i < chars.len() && is_part(chars[i]) {
                        i += 1;
                    }
                    labels.insert(chars[start..i].iter().collect());
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.95, 1e3, 5m.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_start(c) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let is_call = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) {
                if is_call {
                    // The label list: `by (le, outcome)`.
                    i = next + 1;
                    while i < chars.len() && chars[i] != ')' {
                        if is_start(chars[i]) {
                            let start = i;
                            while i < chars.len() && is_part(chars[i]) {
                                i += 1;
                            }
                            labels.insert(chars[start..i].iter().collect());
                        } else {
                            i += 1;
                        }
                    }
                    i += 1;
                }
            } else if !is_call && !KEYWORDS.contains(&word.as_str()) {
                metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    (metrics, labels)
}

#[test]
fn promql_names_tell_metrics_from_functions_labels_and_numbers() {
    let (metrics, labels) = promql_names(
        "histogram_quantile(0.95, max by (le, outcome) (rate(a_bucket{job=~\"$job\",x!=\"b{c}\"}[$__rate_interval]))) / on(job) group_left b_total > 300 or max(c) == bool 1e3",
    );
    assert_eq!(
        metrics,
        ["a_bucket", "b_total", "c"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        labels,
        ["job", "le", "outcome", "x"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

/// `{{label}}` names of a Grafana legend.
fn legend_labels(legend: &str) -> BTreeSet<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// Every expression of the board, with its panel's title, after checking
/// the board's structure.
fn board_exprs(board: &Value) -> Vec<(String, String, String)> {
    assert!(!BOARD.contains("http://") && !BOARD.contains("https://"));
    assert_eq!(board["links"], json!([]), "no external links");
    assert!(board.get("__requires").is_none(), "no plugins required");
    let variables = board["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(
        (&datasource["type"], &datasource["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    let panels = board["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{title}: id");
        assert!(
            ["timeseries", "stat"].contains(&panel["type"].as_str().unwrap()),
            "{title}: a core panel type"
        );
        assert_eq!(panel["datasource"], ds, "{title}: datasource");
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no target");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}");
            assert_eq!(target["datasource"], ds, "{title}: target datasource");
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: a target without expr");
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            exprs.push((title.clone(), expr.to_string(), legend.to_string()));
        }
    }
    exprs
}

/// Every alert rule, after checking the file's structure: (name, expr).
fn alert_exprs(rules: &Value) -> Vec<(String, String)> {
    let groups = rules["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    let mut alerts = Vec::new();
    for group in groups {
        assert!(group["name"].is_string(), "{group}");
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{name}: expr");
            let wait = rule["for"].as_str().unwrap_or_default();
            assert!(
                wait.len() > 1
                    && wait.ends_with(['s', 'm', 'h'])
                    && wait[..wait.len() - 1].parse::<u32>().is_ok(),
                "{name}: for {wait:?}"
            );
            assert!(
                ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{name}: labels.severity"
            );
            let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
            assert!(!summary.is_empty(), "{name}: annotations.summary");
            alerts.push((name.to_string(), expr.to_string()));
        }
    }
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), alerts.len(), "alert names are unique");
    for wanted in [
        "StratboxOldestWaitOverSLA",
        "StratboxDLQGrowing",
        "StratboxNoLiveWorkers",
        "StratboxRedisDown",
    ] {
        assert!(names.contains(wanted), "no {wanted}");
    }
    alerts
}

/// Sample names and label names of a Prometheus text exposition.
fn exposition_names(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap();
        metrics.insert(line[..end].to_string());
        if let Some(set) = line[end..].strip_prefix('{') {
            // Label values here never hold `",`; splitting on it is enough.
            let set = &set[..set.rfind('}').unwrap()];
            for pair in set.split("\",") {
                labels.insert(pair.split_once('=').unwrap().0.to_string());
            }
        }
    }
    labels.extend(TARGET_LABELS.map(String::from));
    (metrics, labels)
}

/// The board's queries as recording rules, for `promtool check rules`
/// to parse (Grafana's variables replaced by what they stand for).
fn promtool_checks_board(exprs: &[(String, String, String)]) {
    let Ok(version) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!("promtool not installed: the board's PromQL is not parsed");
        return;
    };
    assert!(version.status.success());
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr, _))| {
            let expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*");
            json!({"record": format!("stratbox:board_{i}"), "expr": expr})
        })
        .collect();
    let file = std::env::temp_dir().join(format!("stratbox-board-{}.yml", std::process::id()));
    let doc = json!({"groups": [{"name": "board", "rules": rules}]});
    std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "promtool check rules on the board's queries:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn grafana_board_and_alert_rules_use_exported_metrics() {
    let board: Value = serde_json::from_str(BOARD).unwrap();
    let rules: Value = serde_yaml::from_str(RULES).unwrap();
    let panels = board_exprs(&board);
    let alerts = alert_exprs(&rules);

    // A queue with something in it, and HTTP traffic, so that every family
    // has samples.
    let h = Harness::start("api-ops-board", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    let (status, body) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, text) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let (exported, exported_labels) = exposition_names(text.as_str().unwrap());

    let mut used = BTreeSet::new();
    let sources = panels
        .iter()
        .map(|(title, expr, legend)| (format!("panel {title:?}"), expr.as_str(), legend.as_str()))
        .chain(
            alerts
                .iter()
                .map(|(name, expr)| (format!("alert {name}"), expr.as_str(), "")),
        );
    for (source, expr, legend) in sources {
        let (metrics, labels) = promql_names(expr);
        assert!(!metrics.is_empty(), "{source}: no metric in {expr:?}");
        for metric in &metrics {
            assert!(
                exported.contains(metric),
                "{source}: {metric} is not exported by /metrics ({expr:?}); exported: {exported:?}"
            );
        }
        for label in labels.iter().chain(&legend_labels(legend)) {
            assert!(
                exported_labels.contains(label),
                "{source}: label {label} is not exported ({expr:?}); exported: {exported_labels:?}"
            );
        }
        used.extend(metrics);
    }
    // The variable's `label_values(metric, label)`.
    for variable in board["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("unexpected variable query {query:?}"));
            let (metric, label) = inner.split_once(',').unwrap();
            assert!(exported.contains(metric.trim()), "{query}");
            assert!(exported_labels.contains(label.trim()), "{query}");
        }
    }
    // What the issue asks the board to show.
    for family in [
        "stratbox_queue_waiting",
        "stratbox_queue_oldest_wait_seconds",
        "stratbox_tasks_completed_total",
        "stratbox_tasks_failed_total",
        "stratbox_queue_dlq_length",
        "stratbox_task_duration_seconds_bucket",
        "stratbox_http_request_duration_seconds_bucket",
        "stratbox_workers_live",
        "stratbox_redis_up",
    ] {
        assert!(used.contains(family), "nothing shows {family}");
    }

    promtool_checks_board(&panels);
}
