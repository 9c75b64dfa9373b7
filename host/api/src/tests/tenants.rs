//! Tenants through the router: keys, isolation (404, never 403, for
//! another tenant's ids: strategies, tasks, optimizations, schedules), the
//! admin's view, and quotas (429 naming the quota, nothing queued; a
//! schedule's per-task limits bounded by them too).

use super::*;
use stratbox_service::scheduler::{fire, Firing};
use stratbox_store::TenantName;

const ADMIN: &str = "admin-token";

fn with_key(mut request: Request<Body>, secret: &str) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {secret}").parse().unwrap(),
    );
    request
}

fn as_tenant(mut request: Request<Body>, tenant: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("x-stratbox-tenant", tenant.parse().unwrap());
    request
}

async fn new_key(app: &Router, tenant: &str) -> String {
    let (status, body) = send(
        app,
        with_key(
            post_json("/api/v1/keys", &json!({"tenant": tenant, "label": "t"})),
            ADMIN,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["secret"].as_str().unwrap().to_string()
}

fn create_request(strategy_id: u64) -> Value {
    json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
       "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-03T00:00:00Z",
       "initial_capital": 10000.0})
}

/// Two tenants on one install, the market data shared.
struct Tenants {
    h: Harness,
    app: Router,
    acme: String,
    globex: String,
    acme_strategy: u64,
}

async fn tenants(name: &str) -> Tenants {
    let h = Harness::start(name, Some(ADMIN)).await;
    h.candles(100).await;
    let app = h.app();
    let acme = new_key(&app, "acme").await;
    let globex = new_key(&app, "globex").await;
    let acme_store = h
        .redis
        .store
        .for_tenant(&"acme".parse::<TenantName>().unwrap());
    let acme_strategy = h.redis.fake_strategy_in(&acme_store).await.strategy_id;
    Tenants {
        h,
        app,
        acme,
        globex,
        acme_strategy,
    }
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_and_an_admin_sees_all() {
    let t = tenants("tenant-isolation").await;
    let app = &t.app;
    // Once keys exist, reads need one too.
    let (status, _) = send(app, get("/api/v1/strategies")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(app, with_key(get("/api/v1/strategies"), "sbx_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health stays open for load balancers.
    let (status, _) = send(app, get("/api/v1/queue/health")).await;
    assert_eq!(status, StatusCode::OK);

    let strategy = format!("/api/v1/strategies/{}", t.acme_strategy);
    let (status, _) = send(app, with_key(get(&strategy), &t.acme)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app, with_key(get(&strategy), &t.globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = send(app, with_key(get("/api/v1/strategies"), &t.globex)).await;
    assert_eq!(list["strategies"].as_array().unwrap().len(), 0, "{list}");

    // acme runs on the shared candles; its task is its own.
    let (status, run) = send(
        app,
        with_key(
            post_json(
                "/api/v1/queue/backtest/create-and-run",
                &create_request(t.acme_strategy),
            ),
            &t.acme,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let task = format!("/api/v1/queue/tasks/{}", run["task_id"].as_str().unwrap());
    let (status, _) = send(app, with_key(get(&task), &t.acme)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app, with_key(get(&task), &t.globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let cancel = Request::delete(&task).body(Body::empty()).unwrap();
    let (status, _) = send(app, with_key(cancel, &t.globex)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant cannot cancel it"
    );
    // globex cannot even name acme's strategy in a request.
    let (status, body) = send(
        app,
        with_key(
            post_json(
                "/api/v1/queue/backtest/create-and-run",
                &create_request(t.acme_strategy),
            ),
            &t.globex,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["field"], "strategy_id");

    // A tenant key cannot act for another tenant, nor see the whole queue
    // or the keys.
    let (status, _) = send(app, as_tenant(with_key(get(&strategy), &t.globex), "acme")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for admin_only in ["/api/v1/queue/state", "/api/v1/keys", "/api/v1/tenants"] {
        let (status, _) = send(app, with_key(get(admin_only), &t.acme)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{admin_only}");
    }
    // The admin sees acme's records by naming it, and its own without.
    let (status, _) = send(app, as_tenant(with_key(get(&strategy), ADMIN), "acme")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app, with_key(get(&strategy), ADMIN)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the install has no strategy of that id"
    );
    let (status, _) = send(app, with_key(get(&task), ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "an admin sees every task");
    let (_, tenants) = send(app, with_key(get("/api/v1/tenants"), ADMIN)).await;
    let acme = &tenants["tenants"][0];
    assert_eq!(
        (acme["tenant"].as_str(), acme["queued"].as_u64()),
        (Some("acme"), Some(1))
    );
    assert_eq!(acme["results"], 1);

    // Revoked: refused at once on this process.
    let (_, keys) = send(app, with_key(get("/api/v1/keys"), ADMIN)).await;
    let id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tenant"] == "acme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !keys.to_string().contains(&t.acme[4..]),
        "no secret is listed"
    );
    let revoke = Request::delete(format!("/api/v1/keys/{id}"))
        .body(Body::empty())
        .unwrap();
    let (status, _) = send(app, with_key(revoke, ADMIN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(app, with_key(get(&strategy), &t.acme)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let _ = &t.h;
}

#[tokio::test]
async fn over_a_quota_is_a_429_naming_it_and_nothing_is_queued() {
    let t = tenants("tenant-quota").await;
    let app = &t.app;
    let quota = Request::put("/api/v1/tenants/acme/quota")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"max_queued": 2, "max_fuel": 5_000_000, "max_results": 3}).to_string(),
        ))
        .unwrap();
    let (status, body) = send(app, with_key(quota, ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let submit = |body: Value| {
        with_key(
            post_json("/api/v1/queue/backtest/create-and-run", &body),
            &t.acme,
        )
    };
    for _ in 0..2 {
        let (status, body) = send(app, submit(create_request(t.acme_strategy))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let before = t.h.stream_len().await;
    let response = app
        .clone()
        .oneshot(submit(create_request(t.acme_strategy)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(retry_after, "5");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["field"], "max_queued");
    assert_eq!(t.h.stream_len().await, before, "nothing queued");
    // Another tenant is not held back by acme's quota... but has no
    // strategy of acme's; its own quota is unset.
    let (status, _) = send(app, with_key(get("/api/v1/tenants/acme"), &t.globex)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's quota is not shown"
    );
    let (status, own) = send(app, with_key(get("/api/v1/tenants/acme"), &t.acme)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (own["queued"].as_u64(), own["quota"]["max_queued"].as_u64()),
        (Some(2), Some(2))
    );

    // Per-task limits: above the quota refused, left out filled in.
    let mut greedy = create_request(t.acme_strategy);
    greedy["fuel"] = json!(6_000_000);
    let (status, body) = send(app, submit(greedy)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["field"], "max_fuel");

    // Results: 2 stored of 3; raise max_queued and the fourth is refused.
    let quota = Request::put("/api/v1/tenants/acme/quota")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"max_results": 3}).to_string()))
        .unwrap();
    let (status, _) = send(app, with_key(quota, ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(app, submit(create_request(t.acme_strategy))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app, submit(create_request(t.acme_strategy))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["field"], "max_results");

    // A quota of zero is a mistake, named.
    let zero = Request::put("/api/v1/tenants/acme/quota")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"max_running": 0}).to_string()))
        .unwrap();
    let (status, body) = send(app, with_key(zero, ADMIN)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "max_running");
}

#[tokio::test]
async fn keys_and_quotas_are_an_admins_business() {
    let h = Harness::start("tenant-admin", Some(ADMIN)).await;
    let app = h.app();
    // Token mode without keys: reads stay open, but not the keys.
    let (status, _) = send(&app, get("/api/v1/strategies")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, get("/api/v1/keys")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(
        &app,
        with_key(
            post_json("/api/v1/keys", &json!({"tenant": "Not Valid"})),
            ADMIN,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "tenant");
    let (status, body) = send(
        &app,
        with_key(
            post_json("/api/v1/keys", &json!({"tenant": "a", "admin": true})),
            ADMIN,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "admin");
    // An admin key works as the token does.
    let (status, body) = send(
        &app,
        with_key(post_json("/api/v1/keys", &json!({"admin": true})), ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let admin_key = body["secret"].as_str().unwrap().to_string();
    let (status, _) = send(&app, with_key(get("/api/v1/keys"), &admin_key)).await;
    assert_eq!(status, StatusCode::OK);
    let tenant_key = new_key(&app, "acme").await;
    let (status, _) = send(
        &app,
        with_key(
            post_json("/api/v1/keys", &json!({"tenant": "acme"})),
            &tenant_key,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, with_key(get("/api/v1/queue/dlq"), &tenant_key)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a tenant lists its own dead letters"
    );
    let purge = Request::delete("/api/v1/queue/dlq")
        .body(Body::empty())
        .unwrap();
    let (status, _) = send(&app, with_key(purge, &tenant_key)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn put_quota(tenant: &str, quota: &Value) -> Request<Body> {
    let request = Request::put(format!("/api/v1/tenants/{tenant}/quota"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(quota.to_string()))
        .unwrap();
    with_key(request, ADMIN)
}

/// `create_request` with `extra`'s fields set on top.
fn create_request_with(strategy_id: u64, extra: Value) -> Value {
    let mut request = create_request(strategy_id);
    let Value::Object(extra) = extra else {
        panic!("extra fields must be an object: {extra}")
    };
    for (k, v) in extra {
        request[k] = v;
    }
    request
}

/// An optimization create-and-run over `create_request`'s range.
fn sweep_request(strategy_id: u64, extra: Value) -> Value {
    let mut request = create_request_with(strategy_id, extra);
    request["search_space"] = json!({"fast_period": [5, 10], "slow_period": [20, 30]});
    request
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn another_tenants_optimizations_and_schedules_are_404_and_an_admin_sees_them() {
    let t = tenants("tenant-isolation-records").await;
    let app = &t.app;
    let (status, sweep) = send(
        app,
        with_key(
            post_json(
                "/api/v1/queue/optimization/create-and-run",
                &sweep_request(t.acme_strategy, json!({})),
            ),
            &t.acme,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sweep}");
    let optimization = format!(
        "/api/v1/optimizations/{}",
        sweep["optimization_id"].as_u64().unwrap()
    );
    let (status, schedule) = send(
        app,
        with_key(
            post_json(
                "/api/v1/schedules",
                &json!({"every_secs": 3600, "backtest": create_request(t.acme_strategy)}),
            ),
            &t.acme,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let schedule = format!(
        "/api/v1/schedules/{}",
        schedule["schedule_id"].as_u64().unwrap()
    );

    // globex: every way of naming acme's ids is a 404 with the code an
    // unknown id gets (never a 403, which would say the id exists), and
    // its lists are empty.
    let unknown = [
        ("/api/v1/optimizations/999999", "optimization_not_found"),
        ("/api/v1/schedules/999999", "schedule_not_found"),
    ];
    for (uri, code) in unknown {
        let (status, body) = send(app, with_key(get(uri), &t.globex)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some(code)),
            "{uri}: {body}"
        );
    }
    let attempts = [
        ("GET", optimization.clone(), "optimization_not_found"),
        (
            "GET",
            format!("{optimization}/table.csv"),
            "optimization_not_found",
        ),
        (
            "POST",
            format!("{optimization}/cancel"),
            "optimization_not_found",
        ),
        ("DELETE", optimization.clone(), "optimization_not_found"),
        ("GET", schedule.clone(), "schedule_not_found"),
        ("POST", format!("{schedule}/pause"), "schedule_not_found"),
        ("POST", format!("{schedule}/resume"), "schedule_not_found"),
        ("DELETE", schedule.clone(), "schedule_not_found"),
    ];
    for (method, uri, code) in &attempts {
        let (status, body) = send(app, with_key(request(method, uri), &t.globex)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some(*code)),
            "globex: {method} {uri}: {body}"
        );
    }
    for (list, field) in [
        ("/api/v1/optimizations", "optimizations"),
        ("/api/v1/schedules", "schedules"),
    ] {
        let (status, body) = send(app, with_key(get(list), &t.globex)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body[field].as_array().unwrap().len(), 0, "{list}: {body}");
    }

    // Nothing globex tried touched them: acme still has both, queued and
    // active.
    let (status, own) = send(app, with_key(get(&optimization), &t.acme)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["status"], "queued", "{own}");
    let (status, own) = send(app, with_key(get(&schedule), &t.acme)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["paused"], false, "{own}");

    // The admin sees both by naming acme; without, the install's own
    // keyspace has no record of those ids.
    for uri in [&optimization, &schedule] {
        let (status, body) = send(app, as_tenant(with_key(get(uri), ADMIN), "acme")).await;
        assert_eq!(status, StatusCode::OK, "admin as acme: {uri}: {body}");
        let (status, _) = send(app, with_key(get(uri), ADMIN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "admin as the install: {uri}");
    }
    for (list, field) in [
        ("/api/v1/optimizations", "optimizations"),
        ("/api/v1/schedules", "schedules"),
    ] {
        let (_, body) = send(app, as_tenant(with_key(get(list), ADMIN), "acme")).await;
        assert_eq!(body[field].as_array().unwrap().len(), 1, "{list}: {body}");
    }
}

#[tokio::test]
async fn a_schedules_limits_are_bounded_by_the_tenants_quota_and_validated() {
    let t = tenants("tenant-schedule-limits").await;
    let app = &t.app;
    let quota = json!({"max_fuel": 5_000_000, "max_memory_mib": 16, "max_timeout_ms": 60_000});
    let (status, body) = send(app, put_quota("acme", &quota)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = t.acme_strategy;
    let schedule = |submits: &str, request: Value| {
        with_key(
            post_json(
                "/api/v1/schedules",
                &json!({"every_secs": 3600, submits: request}),
            ),
            &t.acme,
        )
    };

    // Above the quota: a 429 naming the quota, as a create-and-run gets.
    for (submits, request, field) in [
        (
            "backtest",
            create_request_with(id, json!({"fuel": 6_000_000})),
            "max_fuel",
        ),
        (
            "backtest",
            create_request_with(id, json!({"memory_mib": 17})),
            "max_memory_mib",
        ),
        (
            "backtest",
            create_request_with(id, json!({"timeout_ms": 60_001})),
            "max_timeout_ms",
        ),
        (
            "optimization",
            sweep_request(id, json!({"fuel": 6_000_000})),
            "max_fuel",
        ),
        (
            "optimization",
            sweep_request(id, json!({"memory_mib": 17})),
            "max_memory_mib",
        ),
    ] {
        let (status, body) = send(app, schedule(submits, request)).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{submits} {field}: {body}"
        );
        assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // Within the quota but not a limit at all: a 422 naming the field.
    for (submits, request, field) in [
        (
            "backtest",
            create_request_with(id, json!({"fuel": 0})),
            "backtest.fuel",
        ),
        (
            "backtest",
            create_request_with(id, json!({"timeout_ms": 0})),
            "backtest.timeout_ms",
        ),
        (
            "optimization",
            sweep_request(id, json!({"memory_mib": 0})),
            "optimization.memory_mib",
        ),
    ] {
        let (status, body) = send(app, schedule(submits, request)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{submits} {field}: {body}"
        );
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let acme =
        t.h.redis
            .store
            .for_tenant(&"acme".parse::<TenantName>().unwrap());
    assert!(
        acme.list_schedules().await.unwrap().is_empty(),
        "nothing stored"
    );

    // Within it: kept as given, and what is left out is the quota's
    // maximum, stored with the schedule and carried by its occurrences.
    let limits = |fuel| stratbox_store::TaskLimits {
        fuel: Some(fuel),
        memory_mib: Some(16),
        timeout_ms: Some(60_000),
    };
    for (submits, request, expected) in [
        (
            "backtest",
            create_request_with(id, json!({"fuel": 1_000_000})),
            limits(1_000_000),
        ),
        ("backtest", create_request(id), limits(5_000_000)),
        (
            "optimization",
            sweep_request(id, json!({"memory_mib": 16})),
            limits(5_000_000),
        ),
    ] {
        let (status, created) = send(app, schedule(submits, request)).await;
        assert_eq!(status, StatusCode::CREATED, "{submits}: {created}");
        let schedule_id = created["schedule_id"].as_u64().unwrap();
        let record = acme.get_schedule(schedule_id).await.unwrap().unwrap();
        assert_eq!(
            record.definition.submits.backtest().limits,
            expected,
            "{submits}"
        );
        let due = record.next_run_ms.unwrap();
        let firing = fire(&acme, &t.h.state.queue, schedule_id, due)
            .await
            .unwrap();
        let submitted = match firing {
            Firing::Backtest { backtest_id, .. } => {
                acme.get_backtest(backtest_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .definition
            }
            Firing::Optimization {
                optimization_id, ..
            } => {
                acme.get_optimization(optimization_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .definition
                    .backtest
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            submitted.limits, expected,
            "{submits}: the occurrence's run"
        );
    }
}
