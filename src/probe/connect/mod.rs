//! Reaching one address: TCP, the TLS handshake and its judge, the certificate's facts, and HTTP/1.1 on the
//! judged connection.

pub mod cert;
pub mod http_client;
pub mod tls;
