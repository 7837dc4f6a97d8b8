//! A worker in front of the assets, like a Cloudflare Worker with an
//! `ASSETS` binding and `run_worker_first = true`:
//!
//! - a request without `Authorization: Bearer demo-token` gets 401;
//! - an authenticated one is answered from the bundle through
//!   `env.assets.fetch`, and HTML responses are streamed through
//!   `lol_html` (the engine behind HTMLRewriter), which replaces the
//!   content of the `#user` element with the user's name as JSON.
//!
//! Run it: `cargo run --example auth_worker`, then
//! `curl -H 'Authorization: Bearer demo-token' http://127.0.0.1:8788/`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use lol_html::element;
use lol_html::html_content::ContentType;
use lol_html::send::{Element, HtmlRewriter, Settings};
use sitepack::build::{build, BuildOptions, Compression, WalkOptions};
use sitepack::config::{Config, RunWorkerFirst};
use sitepack::serve::{self, channel_body, Body, BoxFuture, Env, Limits, Site, State, Worker};

/// The users this demo knows, by bearer token.
fn user_for(token: &str) -> Option<&'static str> {
    match token {
        "demo-token" => Some("Ada Lovelace"),
        _ => None,
    }
}

struct AuthWorker;

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

impl Worker for AuthWorker {
    fn fetch(&self, req: Request<Body>, env: Env) -> BoxFuture<Response<Body>> {
        Box::pin(async move {
            let user = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(user_for);
            let Some(user) = user else {
                let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            };

            // Ask the assets for the identity bytes: we are about to change
            // them, so a precompressed variant would be of no use.
            let mut asset_req = Request::new(());
            *asset_req.method_mut() = req.method().clone();
            *asset_req.uri_mut() = req.uri().clone();
            *asset_req.headers_mut() = req.headers().clone();
            asset_req.headers_mut().remove(header::ACCEPT_ENCODING);
            asset_req.headers_mut().remove(header::IF_NONE_MATCH);
            let resp = env.assets.fetch(&asset_req).await;

            let is_html = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/html"));
            if !is_html {
                return resp;
            }
            let (mut parts, mut body) = resp.into_parts();
            // The body changes: its length and validator no longer hold.
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.remove(header::ETAG);
            parts.headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );

            let (tx, out) = channel_body(8);
            tokio::spawn(async move {
                let pending: Arc<Mutex<Vec<Bytes>>> = Arc::default();
                let sink = pending.clone();
                let name = serde_json::to_string(user).unwrap_or_default();
                let mut rewriter = HtmlRewriter::new(
                    Settings::new_send().append_element_content_handler(element!(
                        "#user",
                        move |el: &mut Element| {
                            el.set_inner_content(&name, ContentType::Text);
                            Ok(())
                        }
                    )),
                    move |chunk: &[u8]| {
                        if let Ok(mut p) = sink.lock() {
                            p.push(Bytes::copy_from_slice(chunk));
                        }
                    },
                );
                // Stream: each input frame is rewritten and forwarded as
                // soon as the rewriter lets go of it.
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { return };
                    if let Ok(data) = frame.into_data() {
                        if rewriter.write(&data).is_err() {
                            return;
                        }
                    }
                    let ready: Vec<Bytes> = pending
                        .lock()
                        .map(|mut p| p.drain(..).collect())
                        .unwrap_or_default();
                    for chunk in ready {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
                if rewriter.end().is_err() {
                    return;
                }
                let rest: Vec<Bytes> = pending
                    .lock()
                    .map(|mut p| p.drain(..).collect())
                    .unwrap_or_default();
                for chunk in rest {
                    let _ = tx.send(chunk).await;
                }
            });
            Response::from_parts(parts, out)
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen: SocketAddr = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8788".into())
        .parse()?;
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("demo.pack");
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-site");
    build(
        &BuildOptions {
            root: site,
            output: bundle.clone(),
            config: Config {
                run_worker_first: RunWorkerFirst::On,
                ..Config::default()
            },
            compression: Compression::Fast,
            walk: WalkOptions::default(),
        },
        &(),
    )?;
    let state = State::new(Site::load(&bundle, false)?, Some(Arc::new(AuthWorker)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!(
        "auth_worker: listening on http://{}",
        listener.local_addr()?
    );
    serve::serve(listener, state, Limits::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
