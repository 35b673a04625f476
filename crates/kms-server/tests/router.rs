//! The HTTP API through `Router` + `oneshot`, without a socket: authentication, the document
//! round trip, bad bodies, preconditions, history and rollback, health.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN_TOKEN, CI_TOKEN, Sandbox, app, call, fixture};

const CONFIG: &str = "/api/ucp/config-toml";

#[tokio::test]
async fn get_before_any_put_is_a_json_404() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let answer = call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let message = answer.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("PUT one"), "{message}");
}

#[tokio::test]
async fn a_put_document_is_returned_byte_for_byte_with_an_etag() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let document = fixture("ucp-config.toml");

    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], document.clone()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let message = put.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("configuration saved as revision 1"), "{message}");

    let get = call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.text(), document);
    assert_eq!(get.headers["content-type"], "application/toml");
    assert_eq!(get.etag(), put.etag());

    let etag = get.etag();
    let cached =
        call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[("if-none-match", &etag)], "")
            .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn every_api_route_needs_a_valid_token_and_health_routes_do_not() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let guarded = [
        (Method::GET, CONFIG),
        (Method::PUT, CONFIG),
        (Method::GET, "/api/kms/encryption-config"),
        (Method::GET, "/api/kms/plan"),
        (Method::GET, "/api/kms/status"),
        (Method::GET, "/api/kms/history"),
        (Method::POST, "/api/kms/rollback"),
        (Method::GET, "/api/unknown"),
        (Method::GET, "/metrics"),
    ];
    for (method, path) in guarded {
        for token in [None, Some("wrong-token-0123456789"), Some(""), Some("admin")] {
            let answer = call(&router, method.clone(), path, token, &[], "").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path} {token:?}");
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
            assert!(answer.json()["message"].as_str().unwrap().contains("Bearer"));
        }
        let answer = call(&router, method.clone(), path, Some(CI_TOKEN), &[], "").await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // A scheme other than Bearer is no token at all.
    let basic = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    let answer = call(&router, Method::GET, CONFIG, None, &basic, "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    for path in ["/_ping", "/healthz", "/readyz"] {
        let answer = call(&router, Method::GET, path, None, &[], "").await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let answer = call(&router, Method::GET, "/healthz", None, &[], "").await;
    assert_eq!((answer.status, answer.text().as_str()), (StatusCode::OK, "ok"));

    // Errors keep their JSON body for unknown routes and methods too.
    let answer = call(&router, Method::DELETE, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.json()["message"].is_string());
    let answer = call(&router, Method::GET, "/nowhere", None, &[], "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["message"].is_string());
}

#[tokio::test]
async fn metrics_can_be_public() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &["--metrics-public"]);
    let answer = call(&router, Method::GET, "/metrics", None, &[], "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text().contains("ucp_kms_config_revision"), "{}", answer.text());
    // The API stays guarded.
    let answer = call(&router, Method::GET, CONFIG, None, &[], "").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_are_refused_and_the_previous_config_stays() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let good = fixture("ucp-config.toml");
    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], good.clone()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());

    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("empty", Vec::new(), StatusCode::BAD_REQUEST),
        ("2 MiB", vec![b'#'; 2 * 1024 * 1024], StatusCode::PAYLOAD_TOO_LARGE),
        (
            "invalid UTF-8",
            b"[cluster_config]\nkms_name = \"\xff\xfe\"\n".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("TOML syntax error", fixture("syntax-error.toml").into_bytes(), StatusCode::BAD_REQUEST),
        ("wrong types", fixture("wrong-types.toml").into_bytes(), StatusCode::BAD_REQUEST),
        ("invalid KMS setting", fixture("invalid-kms.toml").into_bytes(), StatusCode::BAD_REQUEST),
    ];
    for (name, body, status) in cases {
        let answer = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], body).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.text());
        let json = answer.json();
        assert!(json["message"].is_string(), "{name}: {json}");
        if status == StatusCode::BAD_REQUEST {
            assert!(json["errors"].is_array(), "{name}: {json}");
        }
        let get = call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
        assert_eq!(get.text(), good, "{name} replaced the configuration");
    }

    // Every problem is reported, each with its field.
    let answer =
        call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], fixture("wrong-types.toml"))
            .await;
    let errors = answer.json()["errors"].as_array().unwrap().clone();
    let fields: Vec<&str> = errors.iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"cluster_config.kms_enabled"), "{errors:?}");
    assert!(fields.contains(&"cluster_config.kms_cachesize"), "{errors:?}");

    let answer =
        call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], fixture("invalid-kms.toml"))
            .await;
    let errors = answer.json()["errors"].as_array().unwrap().clone();
    assert!(errors.iter().any(|e| e["field"] == "cluster_config.kms_endpoint"), "{errors:?}");

    let history = call(&router, Method::GET, "/api/kms/history", Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(history.json()["revisions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_a_current_one_wins() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let first = fixture("ucp-config.toml");
    let second = first.replace("lifetime_minutes = 60", "lifetime_minutes = 90");

    let stale = [("if-match", "\"7-0000000000000000\"")];
    let answer = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &stale, first.clone()).await;
    assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED, "{}", answer.text());

    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], first.clone()).await;
    let etag = put.etag();
    let matching = [("if-match", etag.as_str())];
    let answer =
        call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &matching, second.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let answer = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &matching, first).await;
    assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED);

    let get = call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(get.text(), second);
}

#[tokio::test]
async fn history_names_tokens_and_rollback_makes_a_new_revision() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    let first = fixture("ucp-config.toml");
    let second = first.replace("per_user_limit = 10", "per_user_limit = 3");
    call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], first.clone()).await;
    call(&router, Method::PUT, CONFIG, Some(CI_TOKEN), &[], second).await;

    let body = r#"{"revision": 1}"#;
    let json = [("content-type", "application/json")];
    let answer =
        call(&router, Method::POST, "/api/kms/rollback", Some(CI_TOKEN), &json, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["revision"], 3);

    let get = call(&router, Method::GET, CONFIG, Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(get.text(), first);

    let history = call(&router, Method::GET, "/api/kms/history", Some(ADMIN_TOKEN), &[], "").await;
    let history = history.json();
    assert_eq!(history["current"], 3);
    let revisions = history["revisions"].as_array().unwrap();
    let tokens: Vec<&str> = revisions.iter().map(|r| r["token"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["admin", "ci", "ci"]);
    assert_eq!(revisions[0]["config_hash"], revisions[2]["config_hash"]);
    assert_ne!(revisions[0]["config_hash"], revisions[1]["config_hash"]);
    assert_eq!(revisions[2]["source"]["from"], 1);
    assert!(revisions[0]["time"].as_str().unwrap().ends_with('Z'));

    let missing = r#"{"revision": 42}"#;
    let answer =
        call(&router, Method::POST, "/api/kms/rollback", Some(CI_TOKEN), &json, missing).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    let answer =
        call(&router, Method::POST, "/api/kms/rollback", Some(CI_TOKEN), &json, "{\"rev\":1}")
            .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
}

#[tokio::test]
async fn kms_disabled_needs_no_plugin_and_is_ready() {
    let sandbox = Sandbox::new();
    let router = app(&sandbox, &[]);
    call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], fixture("ucp-config.toml")).await;

    for (path, status, body) in [("/_ping", 200, "OK"), ("/readyz", 200, "ready")] {
        let answer = call(&router, Method::GET, path, None, &[], "").await;
        assert_eq!((answer.status.as_u16(), answer.text().as_str()), (status, body));
    }
    let status = call(&router, Method::GET, "/api/kms/status", Some(ADMIN_TOKEN), &[], "").await;
    let status = status.json();
    assert_eq!(status["reconcile"]["outcome"], "nothing_to_install", "{status}");
    assert_eq!(status["revision"], 1);
    assert!(!sandbox.installed().exists());

    let answer =
        call(&router, Method::GET, "/api/kms/encryption-config", Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_broken_installed_file_is_reported_and_kept_until_the_operator_removes_it() {
    let sandbox = Sandbox::new();
    let installed = sandbox.installed();
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    let broken = "kind: EncryptionConfiguration\nresources: [unclosed\n";
    std::fs::write(&installed, broken).unwrap();
    let router = app(&sandbox, &["--resync", "1h"]);

    // The configuration is valid: it is stored, but nothing replaces a file that may be all
    // that can read the stored data.
    let document = fixture("ucp-config.toml");
    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], document.clone()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let message = put.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("not applied") && message.contains("cannot be decoded"), "{message}");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), broken);
    let ready = call(&router, Method::GET, "/readyz", None, &[], "").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.text());

    // Removed by the operator, it is not put back; the next pass finds nothing to do.
    std::fs::remove_file(&installed).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!installed.exists());
    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], document).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let ready = call(&router, Method::GET, "/readyz", None, &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_healthy_plugin_the_file_plan_and_status_agree() {
    use kms_model::{Endpoint, KmsApiVersion};
    use kms_mount::plugin::dev::{self, DevPluginConfig};

    let sandbox = Sandbox::new();
    let socket = sandbox.root().join("run/kmsplugin/socket.sock");
    let endpoint = Endpoint::Path(socket.display().to_string());
    let config = DevPluginConfig::new(endpoint, KmsApiVersion::V2, dev::random_key().unwrap());
    let plugin = dev::bind(config).await.unwrap();
    tokio::spawn(plugin.serve(std::future::pending()));

    let router = app(&sandbox, &[]);
    let document = fixture("ucp-config-kms.toml").replace("@SOCKET@", "/run/kmsplugin/socket.sock");
    let put = call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], document).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());

    let yaml =
        call(&router, Method::GET, "/api/kms/encryption-config", Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(yaml.status, StatusCode::OK);
    assert_eq!(yaml.body, std::fs::read(sandbox.installed()).unwrap());
    assert_eq!(yaml.etag(), format!("\"{}\"", kms_render::config_hash(&yaml.body)));
    let etag = yaml.etag();
    let again = call(
        &router,
        Method::GET,
        "/api/kms/encryption-config",
        Some(ADMIN_TOKEN),
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    let plan = call(&router, Method::GET, "/api/kms/plan", Some(ADMIN_TOKEN), &[], "").await;
    let plan = plan.json();
    let flags: Vec<&str> =
        plan["apiserver_flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(
        flags.contains(&"--encryption-provider-config=/etc/ucp-kms/encryption-config.yaml"),
        "{plan}"
    );
    let sources: Vec<&str> =
        plan["mounts"].as_array().unwrap().iter().map(|m| m["source"].as_str().unwrap()).collect();
    assert!(sources.contains(&"/run/kmsplugin"), "{plan}");

    let status = call(&router, Method::GET, "/api/kms/status", Some(ADMIN_TOKEN), &[], "").await;
    let status = status.json();
    assert_eq!(status["kms_enabled"], true);
    assert_eq!(status["installed_hash"], status["desired_hash"]);
    assert_eq!(status["desired_hash"].as_str().unwrap(), etag.trim_matches('"'));
    assert_eq!(status["plugin"]["healthy"], true, "{status}");
    assert_eq!(status["reconcile"]["outcome"], "installed", "{status}");

    let ping = call(&router, Method::GET, "/_ping", None, &[], "").await;
    assert_eq!((ping.status, ping.text().as_str()), (StatusCode::OK, "OK"));
}

#[tokio::test]
async fn key_material_of_kept_providers_never_leaves_through_the_api() {
    let sandbox = Sandbox::new();
    // Somewhere other than the default path, as --encryption-config allows.
    let installed = sandbox.root().join("srv/kube/encryption.yaml");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    // A local aescbc key from before ucp-kms: it wrote data, so every transition keeps it.
    let secret = "c2VjcmV0IGlzIHNlY3VyZSwgaSB0aGluayBzby4uLi4=";
    let before = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources:\n  - secrets\n  providers:\n  - aescbc:\n      keys:\n      - name: key1\n\
         \x20       secret: {secret}\n  - identity: {{}}\n"
    );
    std::fs::write(&installed, &before).unwrap();
    let router = app(&sandbox, &["--encryption-config", "/srv/kube/encryption.yaml"]);

    let put =
        call(&router, Method::PUT, CONFIG, Some(ADMIN_TOKEN), &[], fixture("ucp-config.toml"))
            .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let on_disk = std::fs::read_to_string(&installed).unwrap();
    assert!(on_disk.contains(secret), "the kept provider lost its key:\n{on_disk}");

    let yaml =
        call(&router, Method::GET, "/api/kms/encryption-config", Some(ADMIN_TOKEN), &[], "").await;
    assert_eq!(yaml.status, StatusCode::OK);
    let text = yaml.text();
    assert!(!text.contains(secret) && text.contains("REDACTED"), "{text}");
    assert!(text.contains("name: key1"), "{text}");
    assert_eq!(yaml.etag(), format!("\"{}\"", kms_render::config_hash(on_disk.as_bytes())));

    let plan = call(&router, Method::GET, "/api/kms/plan", Some(ADMIN_TOKEN), &[], "").await;
    assert!(
        plan.text().contains("--encryption-provider-config=/srv/kube/encryption.yaml"),
        "{}",
        plan.text()
    );
    assert!(!sandbox.installed().exists());

    for path in ["/api/kms/status", "/api/kms/plan", "/api/kms/history", "/metrics"] {
        let answer = call(&router, Method::GET, path, Some(ADMIN_TOKEN), &[], "").await;
        assert!(!answer.text().contains(secret), "{path} shows the key");
    }
}
