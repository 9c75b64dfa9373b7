//! Who is asking, and what they may see (docs/tenants.md).
//!
//! Three modes, chosen by what is configured:
//! - no token and no API key: open, every caller is the install's admin;
//! - `STRATBOX_API_TOKEN` only: writes need the token, reads stay open
//!   (one team behind a firewall);
//! - API keys: every request needs a key or the token (health excepted),
//!   and a tenant's key sees only its tenant.
//!
//! The token and admin keys act for the install; with `X-Stratbox-Tenant`
//! they act for that tenant, which is how an admin sees every tenant.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;

use stratbox_store::{ApiKey, Quota, Store, TenantName};

use super::{AppError, AppState};

/// Names the tenant an admin acts for.
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-stratbox-tenant");

/// How long this process trusts what it read of a key, and whether keys
/// exist: one Redis read per key per interval instead of per request. A
/// revocation through another API process takes effect within it; through
/// this one, at once.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Known keys stay bounded even if clients send random bearer strings.
const KEY_CACHE_MAX: usize = 10_000;

/// The resolved caller of one request, in its extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The tenant whose data the request sees; `None`: the install's.
    pub tenant: Option<TenantName>,
    /// Manages keys, quotas and the DLQ; may act for any tenant.
    pub admin: bool,
    /// No credentials were given (an open install, or a read without
    /// the token).
    pub anonymous: bool,
}

/// This process's view of the credentials.
pub struct Auth {
    token: Option<Arc<str>>,
    keys_exist: Mutex<Option<(bool, Instant)>>,
    /// sha256 of a presented secret -> what it resolved to, and when.
    known: Mutex<HashMap<String, (Option<ApiKey>, Instant)>>,
    /// Tenants' stores, kept: a store reserves backtest ids in blocks.
    stores: Mutex<BTreeMap<TenantName, Store>>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            keys_exist: Mutex::new(None),
            known: Mutex::default(),
            stores: Mutex::default(),
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The store a caller's requests use.
    pub fn store_for(&self, install: &Store, tenant: Option<&TenantName>) -> Store {
        let Some(tenant) = tenant else {
            return install.clone();
        };
        lock(&self.stores)
            .entry(tenant.clone())
            .or_insert_with(|| install.for_tenant(tenant))
            .clone()
    }

    async fn keys_exist(&self, store: &Store) -> Result<bool, AppError> {
        if let Some((exist, at)) = *lock(&self.keys_exist) {
            if exist || at.elapsed() < KEY_CACHE_TTL {
                return Ok(exist);
            }
        }
        let exist = store.has_api_keys().await?;
        *lock(&self.keys_exist) = Some((exist, Instant::now()));
        Ok(exist)
    }

    async fn key(&self, store: &Store, secret: &str) -> Result<Option<ApiKey>, AppError> {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        if let Some((key, at)) = lock(&self.known).get(&sha) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(key.clone());
            }
        }
        let key = store.api_key_by_secret(secret).await?;
        let mut known = lock(&self.known);
        if known.len() >= KEY_CACHE_MAX {
            known.clear();
        }
        known.insert(sha, (key.clone(), Instant::now()));
        Ok(key)
    }

    /// A key was created or revoked here: forget what was cached.
    pub fn keys_changed(&self) {
        lock(&self.known).clear();
        *lock(&self.keys_exist) = None;
    }

    /// Resolves the caller of a request. `always`: reads need the token
    /// too (the dashboard's data).
    async fn caller(
        &self,
        store: &Store,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        always: bool,
    ) -> Result<Caller, AppError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|b| !b.is_empty());
        let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let install_admin = Caller {
            tenant: None,
            admin: true,
            anonymous: false,
        };
        let mut caller = match bearer {
            Some(given)
                if self
                    .token
                    .as_deref()
                    .is_some_and(|t| constant_time_eq(given.as_bytes(), t.as_bytes())) =>
            {
                install_admin
            }
            Some(given) => match self.key(store, given).await? {
                Some(key) => Caller {
                    tenant: key.tenant,
                    admin: key.admin,
                    anonymous: false,
                },
                None => return Err(AppError::Unauthorized),
            },
            None => {
                // Health is for load balancers: it shows no data.
                let health = path.ends_with("/queue/health");
                if !health && self.keys_exist(store).await? {
                    return Err(AppError::Unauthorized);
                }
                match &self.token {
                    Some(_) if health || (read && !always) => Caller {
                        tenant: None,
                        admin: false,
                        anonymous: true,
                    },
                    Some(_) => return Err(AppError::Unauthorized),
                    None => Caller {
                        anonymous: true,
                        ..install_admin
                    },
                }
            }
        };
        if let Some(value) = headers.get(&TENANT_HEADER) {
            let tenant: TenantName = value
                .to_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| AppError::BadRequest(format!("header {TENANT_HEADER}: {e}")))?;
            if caller.admin {
                caller.tenant = Some(tenant);
            } else if caller.tenant.as_ref() != Some(&tenant) {
                return Err(AppError::Forbidden(format!(
                    "only an admin key may act for another tenant ({TENANT_HEADER})"
                )));
            }
        }
        Ok(caller)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compares without an early exit, so timing does not reveal the prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Resolves the caller of every `/api/v1` request.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    resolve(state, request, next, false).await
}

/// The same for the dashboard's data: reads need the token too.
pub(crate) async fn authenticate_always(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    resolve(state, request, next, true).await
}

async fn resolve(
    state: AppState,
    mut request: Request,
    next: Next,
    always: bool,
) -> Result<Response, AppError> {
    let (headers, method) = (request.headers(), request.method());
    let caller = state
        .auth
        .caller(&state.store, headers, method, request.uri().path(), always)
        .await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// A request's view of the data: its caller and that caller's store.
pub struct Scope {
    pub caller: Caller,
    pub store: Store,
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("a route outside the auth middleware"))
        })?;
        let store = state.auth.store_for(&state.store, caller.tenant.as_ref());
        Ok(Scope { caller, store })
    }
}

impl Scope {
    /// Keys, quotas and DLQ operations.
    pub fn require_admin(&self) -> Result<(), AppError> {
        match (self.caller.admin, self.caller.anonymous) {
            (true, _) => Ok(()),
            (false, true) => Err(AppError::Unauthorized),
            (false, false) => Err(AppError::Forbidden("this needs an admin key".into())),
        }
    }

    /// Views of the whole queue (every tenant's tasks): the install's
    /// callers only.
    pub fn require_install(&self) -> Result<(), AppError> {
        match self.caller.tenant {
            None => Ok(()),
            Some(_) => Err(AppError::Forbidden(
                "the whole queue is for admins; a tenant sees its own records".into(),
            )),
        }
    }

    pub fn tenant(&self) -> Option<&TenantName> {
        self.caller.tenant.as_ref()
    }

    /// The tenant's quota (`None` for the install, or a tenant with none
    /// set).
    pub async fn quota(&self) -> Result<Option<Quota>, AppError> {
        match self.tenant() {
            Some(t) => Ok(self.store.quota(t).await?),
            None => Ok(None),
        }
    }

    /// Whether a task (by its lane, which names its tenant) is this
    /// caller's to see: its own tenant's, or any for the install's admin.
    pub fn owns_task(&self, lane: Option<&str>) -> bool {
        lane == self.tenant().map(TenantName::as_str)
            || self.caller.admin && self.tenant().is_none()
    }
}
