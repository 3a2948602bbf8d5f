//! Protocol edges. Each transport decodes its wire into chat calls and encodes chat
//! deliveries for its wire; transports never import each other, only the shared
//! [`bodies`] and [`state`].

pub mod accept;
pub mod admission;
pub mod bodies;
pub mod demo;
pub mod forward;
pub mod http;
pub mod openapi;
pub mod rooms_api;
pub mod server_api;
pub mod socketio;
pub mod state;
pub mod ws;
