//! The connection against real private `redis-server`s: an ACL user and
//! password in the URL, `rediss://` with a CA made for the test (the
//! `openssl` command line), and no password in any error message.

use super::*;
use crate::test_support::TlsTestServer;
use crate::LocalRedis;
use std::path::Path;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word";

/// `user alice on >PASSWORD ~* &* +@all`, as command-line arguments.
fn acl_args() -> Vec<String> {
    [
        "--user",
        USER,
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ]
    .map(String::from)
    .to_vec()
}

fn start(dir: &Path, extra: &[String]) -> LocalRedis {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    LocalRedis::start_with_args(dir, &extra).unwrap()
}

async fn round_trip(conn: &mut ConnectionManager) {
    let _: () = redis::cmd("SET")
        .arg("stratbox:tls-test")
        .arg("value")
        .query_async(conn)
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg("stratbox:tls-test")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(got, "value");
    // A script, as the queue runs its state changes.
    let n: i64 = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        .key("stratbox:tls-count")
        .arg(41)
        .invoke_async(conn)
        .await
        .unwrap();
    assert_eq!(n, 41);
}

async fn whoami(conn: &mut ConnectionManager) -> String {
    redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(conn)
        .await
        .unwrap()
}

#[test]
fn redact_hides_the_password_only() {
    assert_eq!(
        redact("rediss://alice:p%40ss@redis.example:6380/2"),
        "rediss://alice:***@redis.example:6380/2"
    );
    assert_eq!(
        redact("redis://:pw@127.0.0.1:6379"),
        "redis://:***@127.0.0.1:6379"
    );
    assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    assert!(!redact("redis//alice:pw@[x").contains("pw"));
}

#[tokio::test]
async fn acl_user_and_password_in_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &acl_args());
    let port = server.port();

    let url = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{port}/");
    let mut conn = connect(&url).await.unwrap();
    assert_eq!(whoami(&mut conn).await, USER);
    round_trip(&mut conn).await;

    let wrong = format!("redis://{USER}:not-{PASSWORD}@127.0.0.1:{port}/");
    let error = format!("{:#}", connect(&wrong).await.err().unwrap());
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(
        error.contains(&format!("redis://{USER}:***@127.0.0.1:{port}/")),
        "{error}"
    );
    assert!(error.contains("authentication failed"), "{error}");
    assert!(!error.contains(PASSWORD), "the password in: {error}");

    let invalid = format!("redis://{USER}:{PASSWORD}@127.0.0.1:notaport/");
    let error = format!("{:#}", connect(&invalid).await.err().unwrap());
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(!error.contains(PASSWORD), "the password in: {error}");
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_an_acl_user() {
    let acl = acl_args();
    let acl: Vec<&str> = acl.iter().map(String::as_str).collect();
    let t = TlsTestServer::start(&acl);
    let (tls_port, ca) = (t.tls_port, t.tls_files());

    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let mut conn = connect_tls(&url, &ca).await.unwrap();
    assert_eq!(whoami(&mut conn).await, "default");
    round_trip(&mut conn).await;

    let url = format!("rediss://{USER}:{PASSWORD}@localhost:{tls_port}/");
    let mut conn = connect_tls(&url, &ca).await.unwrap();
    assert_eq!(whoami(&mut conn).await, USER);

    // The system's roots do not know the test CA: the certificate is checked.
    let error = format!(
        "{:#}",
        connect_tls(&url, &TlsFiles::default()).await.err().unwrap()
    );
    assert!(error.contains("REDIS_URL"), "{error}");
    assert!(!error.contains(PASSWORD), "the password in: {error}");

    // Plain Redis on the TLS port does not get through either.
    let plain = format!("redis://127.0.0.1:{tls_port}/");
    assert!(connect_tls(&plain, &ca).await.is_err());

    // A CA file that is missing is named in the error.
    let missing = TlsFiles {
        ca_cert: Some(t.dir.path().join("missing.pem")),
        client_cert: None,
    };
    let error = format!("{:#}", connect_tls(&url, &missing).await.err().unwrap());
    assert!(
        error.contains(CA_CERT_ENV) && error.contains("missing.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn rediss_with_a_client_certificate() {
    let t = TlsTestServer::start(&["--tls-auth-clients", "yes"]);
    let mut tls = t.tls_files();
    assert!(connect_tls(&t.url(), &tls).await.is_err());

    tls.client_cert = Some(t.client_certificate());
    let mut conn = connect_tls(&t.url(), &tls)
        .await
        .map_err(|e| format!("{e:#}"))
        .unwrap();
    round_trip(&mut conn).await;
}
