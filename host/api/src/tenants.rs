//! API keys and tenants' quotas (docs/tenants.md): an admin's business,
//! except that a tenant may read its own quota and usage.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use stratbox_store::{ApiKey, Quota, TenantName};

use super::auth::Scope;
use super::error::{ApiResult, AppError, ErrorBody, ErrorCode};
use super::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant the key acts for; leave it out for a key of the
    /// install (with `admin`, one that sees every tenant).
    pub tenant: Option<String>,
    #[serde(default)]
    pub label: String,
    /// Manages keys, quotas and the DLQ, and may act for any tenant.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[schema(value_type = Object)]
    pub key: ApiKey,
    /// The bearer secret: shown this once, stored only as its sha256.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<ApiKey>,
}

fn tenant_name(field: &str, value: &str) -> ApiResult<TenantName> {
    value
        .parse()
        .map_err(|e: stratbox_store::StoreError| AppError::invalid(field, e.to_string()))
}

/// Issue an API key.
#[utoipa::path(post, path = "/api/v1/keys", tag = "tenants", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    scope: Scope,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    scope.require_admin()?;
    let Json(request) = body?;
    let tenant = request
        .tenant
        .as_deref()
        .map(|t| tenant_name("tenant", t))
        .transpose()?;
    if request.admin && tenant.is_some() {
        return Err(AppError::invalid(
            "admin",
            "an admin key acts for the install (and any tenant by header); leave out `tenant`",
        ));
    }
    if request.label.len() > 200 {
        return Err(AppError::invalid("label", "at most 200 bytes"));
    }
    let (key, secret) = state
        .store
        .create_api_key(tenant.as_ref(), &request.label, request.admin)
        .await?;
    state.auth.keys_changed();
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })))
}

/// Every API key (never their secrets).
#[utoipa::path(get, path = "/api/v1/keys", tag = "tenants",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn list_keys(State(state): State<AppState>, scope: Scope) -> ApiResult<Json<KeyList>> {
    scope.require_admin()?;
    Ok(Json(KeyList {
        keys: state.store.list_api_keys().await?,
    }))
}

/// Revoke an API key: at once here, within 5 s on other API processes.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "tenants",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    scope: Scope,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    scope.require_admin()?;
    let Path(id) = id?;
    match state.store.revoke_api_key(&id).await? {
        Some(_) => {
            state.auth.keys_changed();
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(AppError::not_found(
            ErrorCode::NotFound,
            format!("API key {id} not found"),
        )),
    }
}

/// A tenant's quota and what it uses now.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    pub tenant: String,
    #[schema(value_type = Object)]
    pub quota: Quota,
    /// Its tasks waiting in the queue.
    pub queued: u64,
    /// Its tasks running now.
    pub running: u64,
    /// Its stored backtest and optimization records.
    pub results: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantInfo>,
}

async fn info(state: &AppState, tenant: TenantName, quota: Quota) -> ApiResult<TenantInfo> {
    let store = state.auth.store_for(&state.store, Some(&tenant));
    let ((queued, running), results) = tokio::try_join!(
        async { Ok::<_, AppError>(state.queue.lane_depth(Some(tenant.as_str())).await?) },
        async { Ok::<_, AppError>(store.result_count().await?) }
    )?;
    Ok(TenantInfo {
        tenant: tenant.to_string(),
        quota,
        queued,
        running,
        results,
    })
}

/// Every tenant with its quota and usage.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Json<TenantList>> {
    scope.require_admin()?;
    let mut tenants = Vec::new();
    for (tenant, quota) in state.store.list_tenants().await? {
        tenants.push(info(&state, tenant, quota).await?);
    }
    Ok(Json(TenantList { tenants }))
}

/// One tenant's quota and usage: an admin's, or the tenant's own.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = TenantInfo), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    scope: Scope,
    tenant: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TenantInfo>> {
    let Path(tenant) = tenant?;
    let missing = || AppError::not_found(ErrorCode::NotFound, format!("tenant {tenant} not found"));
    let Ok(name) = tenant.parse::<TenantName>() else {
        return Err(missing());
    };
    // Another tenant's name is as unknown as a name nobody has.
    if !scope.caller.admin && scope.tenant() != Some(&name) {
        return Err(missing());
    }
    let quota = state.store.quota(&name).await?.ok_or_else(missing)?;
    Ok(Json(info(&state, name, quota).await?))
}

/// Set (replace) a tenant's quota; the tenant is created if new.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/quota", tag = "tenants",
    params(("tenant" = String, Path)), request_body = Object,
    responses((status = 200, body = TenantInfo), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn put_quota(
    State(state): State<AppState>,
    scope: Scope,
    tenant: Result<Path<String>, PathRejection>,
    body: Result<Json<Quota>, JsonRejection>,
) -> ApiResult<Json<TenantInfo>> {
    scope.require_admin()?;
    let Path(tenant) = tenant?;
    let name = tenant_name("tenant", &tenant)?;
    let Json(quota) = body?;
    state.store.set_quota(&name, &quota).await?;
    state.quotas.forget(&name);
    state
        .queue
        .set_lane_cap(Some(name.as_str()), quota.max_running)
        .await?;
    Ok(Json(info(&state, name, quota).await?))
}
