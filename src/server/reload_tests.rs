//! A reload that fails by panicking (a bug in parsing, checking or rendering a diagnostic)
//! fails alone: the admin gets a JSON 500, and the next reload (SIGHUP's loop calls the same
//! [`AppState::reload`]) works.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{ApiError, ServeOptions, launch, router};

const ADMIN: &str = "admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reload_fails_alone_and_the_next_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    let demo = include_str!("../../playbooks/demo.playbook");
    std::fs::write(playbooks.join("demo.playbook"), demo).unwrap();
    let config = dir.path().join("playbook.toml");
    std::fs::write(&config, format!("admin_token = \"{ADMIN}\"\n")).unwrap();
    let opts = ServeOptions {
        playbooks: playbooks.clone(),
        data: dir.path().join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(config),
        database: None,
    };
    let (state, _) = launch(&opts, crate::runtime::driver::Clock::wall())
        .await
        .unwrap();

    std::fs::write(
        playbooks.join("demo.playbook"),
        format!("{demo}\n# #!reload-panics\n"),
    )
    .unwrap();
    let e = state.reload().await.unwrap_err();
    assert!(matches!(e, ApiError::Internal(_)), "{e:?}");
    let admin = Request::post("/api/admin/reload")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let r = router(state.clone()).oneshot(admin).await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "internal");

    std::fs::write(
        playbooks.join("demo.playbook"),
        format!("{demo}\n# fixed\n"),
    )
    .unwrap();
    let report = state.reload().await.unwrap();
    assert_eq!(report.loaded, [("demo".to_owned(), 2)]);
}
