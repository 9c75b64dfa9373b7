//! Schedules: submit a backtest or an optimization on a cron expression
//! or an interval (UTC).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::optimizations::{
    parse_optimization, request_field, CreateOptimizationRequest, ObjectiveInfo,
};
use super::queue::{date, parse_create, CreateAndRunRequest};
use super::quota::bound_by_quota;
use stratbox_engine::optimize::Direction;
use stratbox_engine::time::format_rfc3339_secs;
use stratbox_service::scheduler::when::When;
use stratbox_store::schedules::{ScheduleDefinition, ScheduleRecord, Submission};

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSchedule {
    pub name: Option<String>,
    /// Cron expression in UTC: 5 fields (`min hour dom mon dow`) or 6
    /// with seconds first. Give this or `every_secs`.
    pub cron: Option<String>,
    /// A fixed interval in seconds, from `start_at`.
    pub every_secs: Option<u64>,
    /// RFC 3339; no occurrence before it (default: now).
    pub start_at: Option<String>,
    /// RFC 3339; no occurrence after it.
    pub end_at: Option<String>,
    /// What each occurrence submits: a backtest create-and-run request.
    /// Give this or `optimization`.
    #[serde(default)]
    pub backtest: Option<CreateAndRunRequest>,
    /// Or an optimization create-and-run request.
    #[serde(default)]
    pub optimization: Option<CreateOptimizationRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Schedule {
    pub schedule_id: u64,
    pub name: Option<String>,
    pub cron: Option<String>,
    pub every_secs: Option<u64>,
    pub paused: bool,
    /// RFC 3339 (UTC) of the next occurrence; null when paused or ended.
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    /// `backtest` or `optimization`: what each occurrence submits.
    pub submits: String,
    pub strategy_id: Option<u64>,
    pub symbol: String,
    pub timeframe: String,
    /// `spot` or `linear_perpetual`: what every run trades.
    #[schema(value_type = super::queue::Market)]
    pub market: stratbox_engine::Market,
    /// RFC 3339 (UTC): the candle range every run covers.
    pub start_date: String,
    pub end_date: String,
    /// The searched params (an optimization).
    pub search_params: Option<Vec<String>>,
    /// How its runs are ranked (an optimization).
    pub objective: Option<ObjectiveInfo>,
    /// What the last occurrence submitted (a backtest schedule).
    pub last_backtest_id: Option<u64>,
    /// What the last occurrence submitted (an optimization schedule).
    pub last_optimization_id: Option<u64>,
    pub runs: u64,
    /// Why the last occurrence could not submit, if it could not.
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

fn iso(ms: i64) -> String {
    let mut text = format_rfc3339_secs(ms.div_euclid(1000));
    let millis = ms.rem_euclid(1000);
    if millis != 0 {
        text.insert_str(text.len() - 1, &format!(".{millis:03}"));
    }
    text
}

impl From<ScheduleRecord> for Schedule {
    fn from(r: ScheduleRecord) -> Self {
        let submits = &r.definition.submits;
        let backtest = submits.backtest();
        let (search_params, objective) = match submits {
            Submission::Backtest(_) => (None, None),
            Submission::Optimization(o) => (
                Some(o.search_space.keys().cloned().collect()),
                Some(ObjectiveInfo {
                    metric: o.metric.clone(),
                    direction: match o.direction {
                        Direction::Maximize => "maximize".into(),
                        Direction::Minimize => "minimize".into(),
                    },
                    min_trades: o.min_trades,
                }),
            ),
        };
        Schedule {
            schedule_id: r.id,
            submits: submits.kind().to_string(),
            strategy_id: backtest.strategy_id,
            symbol: backtest.symbol.clone(),
            timeframe: stratbox_engine::candles::format_timeframe(backtest.timeframe_secs),
            market: backtest.market,
            start_date: format_rfc3339_secs(backtest.start_ts),
            end_date: format_rfc3339_secs(backtest.end_ts),
            search_params,
            objective,
            name: r.definition.name,
            cron: r.definition.cron,
            every_secs: r.definition.every_secs,
            paused: r.paused,
            next_run: r.next_run_ms.map(iso),
            last_run: r.last_run_ms.map(iso),
            last_backtest_id: r.last_backtest_id,
            last_optimization_id: r.last_optimization_id,
            runs: r.runs,
            last_error: r.last_error,
        }
    }
}

fn not_found(id: u64) -> AppError {
    AppError::not_found(
        ErrorCode::ScheduleNotFound,
        format!("schedule {id} not found"),
    )
}

/// Create a schedule of a backtest or an optimization (exactly one). It
/// is validated now in full (a bad one is refused here, nothing stored)
/// and again at each occurrence. Missed occurrences (every scheduler
/// down) are coalesced into one run when one comes back.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules",
    request_body = CreateSchedule,
    responses((status = 201, body = Schedule), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn create(
    scope: Scope,
    body: Result<Json<CreateSchedule>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let Json(request) = body?;
    let when = When::parse(request.cron.as_deref(), request.every_secs)
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    let now = stratbox_redis::clock::now_ms();
    let start_at_ms = match &request.start_at {
        Some(text) => date("start_at", text)? * 1000,
        None => now,
    };
    let end_at_ms = match &request.end_at {
        Some(text) => Some(date("end_at", text)? * 1000),
        None => None,
    };
    if end_at_ms.is_some_and(|end| end < start_at_ms) {
        return Err(AppError::invalid("end_at", "is before start_at"));
    }
    let (submits, priority) = match (request.backtest, request.optimization) {
        (Some(backtest), None) => {
            let prefixed = |e| prefixed("backtest", e);
            let mut parsed = parse_create(&scope.store, backtest)
                .await
                .map_err(prefixed)?;
            bound_by_quota(&scope, &mut parsed.definition.limits).await?;
            let backtest =
                stratbox_service::tasks::validate_backtest(&scope.store, &parsed.definition)
                    .await
                    .map_err(|e| prefixed(e.into()))?;
            (Submission::Backtest(backtest), parsed.priority)
        }
        (None, Some(optimization)) => {
            let prefixed = |e| prefixed("optimization", e);
            let (mut optimization, options) = parse_optimization(&scope.store, optimization)
                .await
                .map_err(prefixed)?;
            bound_by_quota(&scope, &mut optimization.backtest.limits).await?;
            stratbox_service::tasks::optimization::validate_optimization(
                &scope.store,
                &optimization,
                &options,
            )
            .await
            .map_err(|e| prefixed(request_field(e)))?;
            (Submission::Optimization(optimization), options.priority)
        }
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "optimization",
                "give `backtest` or `optimization`, not both",
            ))
        }
        (None, None) => {
            return Err(AppError::invalid(
                "backtest",
                "give what each occurrence submits: `backtest` or `optimization`",
            ))
        }
    };
    let first = when.next_after(now.max(start_at_ms) - 1, start_at_ms, end_at_ms);
    let Some(first) = first else {
        return Err(AppError::invalid("end_at", "no occurrence falls before it"));
    };
    let definition = ScheduleDefinition {
        name: request.name,
        cron: request.cron,
        every_secs: request.every_secs,
        start_at_ms,
        end_at_ms,
        priority,
        submits,
    };
    let id = scope
        .store
        .create_schedule(&definition, Some(first))
        .await?;
    let record = scope
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Fields of what the schedule submits are named as in the request:
/// `backtest.<field>` or `optimization.<field>`.
fn prefixed(prefix: &str, error: AppError) -> AppError {
    match error {
        AppError::Invalid {
            code,
            field,
            message,
        } => AppError::Invalid {
            code,
            field: format!("{prefix}.{field}"),
            message,
        },
        AppError::NotFound {
            code,
            field,
            message,
        } => AppError::NotFound {
            code,
            field: field.map(|f| format!("{prefix}.{f}")),
            message,
        },
        other => other,
    }
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList)))]
pub async fn list(scope: Scope) -> ApiResult<Json<ScheduleList>> {
    let schedules = scope.store.list_schedules().await?;
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(Schedule::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    let record = scope
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

/// Pause: no occurrence fires until resumed (one in flight is refused).
#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn pause(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    set_paused(&scope.store, id, true).await
}

/// Resume: the next occurrence after now.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn resume(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Schedule>> {
    let Path(id) = id?;
    set_paused(&scope.store, id, false).await
}

async fn set_paused(
    store: &stratbox_store::Store,
    id: u64,
    paused: bool,
) -> ApiResult<Json<Schedule>> {
    let record = store.get_schedule(id).await?.ok_or_else(|| not_found(id))?;
    let definition = &record.definition;
    let next = When::of(definition).ok().and_then(|when| {
        when.next_after(
            stratbox_redis::clock::now_ms(),
            definition.start_at_ms,
            definition.end_at_ms,
        )
    });
    if !store.set_schedule_paused(id, paused, next).await? {
        return Err(not_found(id));
    }
    let record = store.get_schedule(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete_one(
    scope: Scope,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path(id) = id?;
    if scope.store.delete_schedule(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

#[cfg(test)]
mod tests {
    //! Schedules of perpetual runs against a private Redis; the occurrence
    //! is fired as the scheduler loop would, and no worker runs it.

    use super::super::{app, AppState};
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use serde_json::{json, Value};
    use stratbox_engine::perp::Instrument;
    use stratbox_engine::Market;
    use stratbox_service::scheduler::{fire, Firing};
    use stratbox_service::tasks::backtest::BacktestPayload;
    use tower::ServiceExt;

    const HOUR: i64 = 3600;
    const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

    async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn create(body: &Value) -> Request<Body> {
        Request::post("/api/v1/schedules")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    fn backtest(strategy_id: u64, extra: &Value) -> Value {
        let mut request = json!({"strategy_id": strategy_id, "symbol": "BTCUSDT",
            "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-02-01T00:00:00Z", "initial_capital": 10000.0,
            "leverage": 3, "commission": 0.0006,
            "config": {"params": {"fast_period": 5, "slow_period": 20}}});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        request
    }

    fn optimization(strategy_id: u64, extra: &Value) -> Value {
        let mut request = backtest(strategy_id, extra);
        request["config"]["params"] = json!({});
        request["search_space"] = json!({"fast_period": [5, 10], "slow_period": [20, 30]});
        request
    }

    #[tokio::test]
    async fn a_perpetual_schedule_shows_its_market_and_submits_perpetual_runs() {
        let (redis, state) = crate::tests::test_state("api-schedules-perp", None).await;
        let strategy_id = redis.fake_strategy().await.strategy_id;
        let data = stratbox_engine::candles::synth(1_000, 7, HOUR, START, 42_000.0);
        let store = &state.store;
        store.import_candles("BTCUSDT", HOUR, &data).await.unwrap();
        // The symbol's stored contract allows 5x at most.
        let instrument = Instrument {
            max_leverage: 5.0,
            ..Instrument::bybit_default()
        };
        // Stored from its JSON with the symbol, as a fetch leaves it.
        let mut json = serde_json::to_value(instrument).unwrap();
        json["symbol"] = json!("BTCUSDT");
        let stored = serde_json::from_value(json).unwrap();
        store.put_instrument("BTCUSDT", &stored).await.unwrap();
        let perp = json!({"market": "linear_perpetual", "funding_rate": 0.0001});

        // Above the stored maximum (not the default's 100): refused as the
        // create-and-run endpoints refuse it, nothing stored or queued.
        let over = json!({"market": "linear_perpetual", "leverage": 10});
        for (body, field) in [
            (
                json!({"every_secs": 60, "backtest": backtest(strategy_id, &over)}),
                "backtest.leverage",
            ),
            (
                json!({"every_secs": 60, "optimization": optimization(strategy_id, &over)}),
                "optimization.leverage",
            ),
            (
                json!({"every_secs": 60, "backtest": backtest(strategy_id, &json!({"funding_rate": 0.0001}))}),
                "backtest.funding_rate",
            ),
        ] {
            let (status, reply) = send(&state, create(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
            assert_eq!(reply["error"]["field"], field, "{reply}");
        }
        assert!(store.list_schedules().await.unwrap().is_empty());

        let body = json!({"every_secs": 60, "backtest": backtest(strategy_id, &perp)});
        let (status, created) = send(&state, create(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["market"], "linear_perpetual");
        let id = created["schedule_id"].as_u64().unwrap();
        let (_, shown) = send(&state, get(&format!("/api/v1/schedules/{id}"))).await;
        assert_eq!(shown["market"], "linear_perpetual");

        // Its occurrence queues a perpetual backtest, funding rate kept.
        let due = store.get_schedule(id).await.unwrap().unwrap().next_run_ms;
        let firing = fire(store, &state.queue, id, due.unwrap()).await.unwrap();
        let Firing::Backtest {
            backtest_id,
            task_id,
        } = firing
        else {
            panic!("{firing:?}");
        };
        let record = store.get_backtest(backtest_id).await.unwrap().unwrap();
        assert_eq!(record.definition.market, Market::LinearPerpetual);
        assert_eq!(record.definition.funding_rate, Some(0.0001));
        let task = state.queue.task(&task_id).await.unwrap().unwrap();
        let payload: BacktestPayload = serde_json::from_str(&task.payload).unwrap();
        assert_eq!(payload.definition, record.definition);

        // An optimization schedule: shown, and its occurrence's record
        // (what every chunk runs) is perpetual.
        let body = json!({"every_secs": 60, "optimization": optimization(strategy_id, &perp)});
        let (status, created) = send(&state, create(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["market"], "linear_perpetual");
        let id = created["schedule_id"].as_u64().unwrap();
        let due = store.get_schedule(id).await.unwrap().unwrap().next_run_ms;
        let firing = fire(store, &state.queue, id, due.unwrap()).await.unwrap();
        let Firing::Optimization {
            optimization_id, ..
        } = firing
        else {
            panic!("{firing:?}");
        };
        let record = store
            .get_optimization(optimization_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.definition.backtest.market, Market::LinearPerpetual);
        assert_eq!(record.definition.backtest.funding_rate, Some(0.0001));
        let (_, got) = send(
            &state,
            get(&format!("/api/v1/optimizations/{optimization_id}")),
        )
        .await;
        assert_eq!(got["market"], "linear_perpetual", "{got}");

        // A spot schedule says spot.
        let body = json!({"every_secs": 60, "backtest": backtest(strategy_id, &json!({}))});
        let (status, created) = send(&state, create(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["market"], "spot");

        // The document describes the field.
        let doc = <super::super::ApiDoc as utoipa::OpenApi>::openapi();
        let doc = serde_json::to_value(doc).unwrap();
        let schemas = &doc["components"]["schemas"];
        for view in ["Schedule", "Optimization"] {
            let market = &schemas[view]["properties"]["market"];
            assert_eq!(market["$ref"], "#/components/schemas/Market", "{view}");
        }
        assert_eq!(
            schemas["Market"]["enum"],
            json!(["spot", "linear_perpetual"])
        );
    }

    /// A schedule of a backtest over several symbols: validated per symbol
    /// as a create-and-run is, and its occurrence queues the portfolio run.
    #[tokio::test]
    async fn a_schedule_over_several_symbols_queues_portfolio_runs() {
        let (redis, state) = crate::tests::test_state("api-schedules-symbols", None).await;
        let store = &state.store;
        let single = redis.fake_strategy().await.strategy_id;
        // A portfolio strategy's record, as an upload of one leaves it.
        let description = store
            .plugin_record_by_id(single)
            .await
            .unwrap()
            .unwrap()
            .description;
        let bytes = b"a portfolio strategy".to_vec();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let (portfolio, _) = store
            .put_plugin_of(
                &sha,
                &bytes,
                "rotation",
                "0.1.0",
                &description,
                "compiled",
                true,
            )
            .await
            .unwrap();
        for (symbol, seed) in [("BTCUSDT", 7), ("ETHUSDT", 8)] {
            let data = stratbox_engine::candles::synth(1_000, seed, HOUR, START, 100.0);
            store.import_candles(symbol, HOUR, &data).await.unwrap();
        }
        let symbols = json!({"symbol": "", "symbols": ["BTCUSDT", "ETHUSDT"]});
        let missing = json!({"symbol": "", "symbols": ["BTCUSDT", "SOLUSDT"]});
        for (strategy_id, extra, status, field) in [
            (
                single,
                &symbols,
                StatusCode::UNPROCESSABLE_ENTITY,
                "backtest.symbols",
            ),
            (
                portfolio.strategy_id,
                &missing,
                StatusCode::NOT_FOUND,
                "backtest.symbol",
            ),
        ] {
            let body = json!({"every_secs": 60, "backtest": backtest(strategy_id, extra)});
            let (got, reply) = send(&state, create(&body)).await;
            assert_eq!(got, status, "{reply}");
            assert_eq!(reply["error"]["field"], field, "{reply}");
        }
        let (_, reply) = send(
            &state,
            create(
                &json!({"every_secs": 60, "backtest": backtest(portfolio.strategy_id, &missing)}),
            ),
        )
        .await;
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("SOLUSDT"),
            "{reply}"
        );
        assert!(store.list_schedules().await.unwrap().is_empty());

        let body = json!({"every_secs": 60, "backtest": backtest(portfolio.strategy_id, &symbols)});
        let (status, created) = send(&state, create(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["schedule_id"].as_u64().unwrap();
        let due = store.get_schedule(id).await.unwrap().unwrap().next_run_ms;
        let firing = fire(store, &state.queue, id, due.unwrap()).await.unwrap();
        let Firing::Backtest {
            backtest_id,
            task_id,
        } = firing
        else {
            panic!("{firing:?}");
        };
        let record = store.get_backtest(backtest_id).await.unwrap().unwrap();
        assert_eq!(record.definition.symbols, ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(record.definition.symbol, "BTCUSDT");
        let task = state.queue.task(&task_id).await.unwrap().unwrap();
        let payload: BacktestPayload = serde_json::from_str(&task.payload).unwrap();
        assert_eq!(payload.definition, record.definition);
    }
}
