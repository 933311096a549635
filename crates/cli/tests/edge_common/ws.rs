//! WebSocket clients of the edge for the tests: connect, read the next JSON event, and keep
//! only the channels a test looks at (so that status updates do not pile up meanwhile).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Edge;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of `edge` authenticated by `token`, before any message is read.
pub async fn connect(edge: &Edge, token: &str) -> Ws {
    let url = format!("{}/ws?token={token}", edge.base.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket handshake");
    ws
}

/// The next text message as JSON (30 s at most).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a message within 30 s");
        match msg.expect("stream open").expect("no protocol error") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Sends `{type: kind, channels}` and reads until its `answer` (an `error` fails the test).
pub async fn request(ws: &mut Ws, kind: &str, channels: &[&str], answer: &str) {
    ws.send(Message::Text(json!({"type": kind, "channels": channels}).to_string().into())).await.unwrap();
    loop {
        let m = next_json(ws).await;
        if m["type"] == answer {
            return;
        }
        assert_ne!(m["type"], "error", "{m}");
    }
}

/// A client subscribed to `subscribe` and unsubscribed from `unsubscribe`.
pub async fn on_channels(edge: &Edge, token: &str, subscribe: &[&str], unsubscribe: &[&str]) -> Ws {
    let mut ws = connect(edge, token).await;
    if !unsubscribe.is_empty() {
        request(&mut ws, "unsubscribe", unsubscribe, "unsubscribed").await;
    }
    request(&mut ws, "subscribe", subscribe, "subscribed").await;
    ws
}
