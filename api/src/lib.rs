//! # api — Suanpan's gRPC contract, authentication, server, node assembly and client library
//!
//! This crate is everything between the network and the replicated ledger:
//!
//! * [`pb`]: the protobuf contract (`proto/suanpan/v1/*.proto`, package `suanpan.v1`) — the
//!   `Ledger` service (clients), the `Admin` service (operators) and the internal `Peer` service
//!   (Raft messages between replicas as opaque, chunked bytes). One listen port serves all three
//!   plus gRPC server reflection (`grpcurl -plaintext HOST:PORT list`).
//! * [`wire`]: strict conversion of wire values into ledger commands (ids, amounts, enums).
//! * [`auth`]: Ed25519 request signatures, replay protection, roles, key files.
//! * [`server`], [`transport`], [`state_machine`], [`events`], [`node`]: the node — one RocksDB
//!   shared by the ledger and the Raft log, the `consensus` runtime, the state-machine adapter and
//!   the tonic server.
//! * [`client`]: the Rust client library (leader discovery, retries, signing, batching).
//! * [`statement`] (feature `statements`): streaming bank-statement parsers (camt.053, MT940, CSV)
//!   and the reconciliation matcher, used by `suanpan reconcile`.
//!
//! ## Wire contract (summary; the `.proto` files are normative)
//! * Ids are canonical UUID strings (8-4-4-4-12 hex); anything else, and the nil UUID, is
//!   `INVALID_ARGUMENT`.
//! * Amounts are decimal strings `[0-9]+(\.[0-9]+)?` in the currency's major unit, at most 28
//!   significant digits and no more fractional digits than the currency's exponent (trailing
//!   zeros ignored). Negative amounts, exponents, signs, whitespace, `NaN` are `INVALID_ARGUMENT`.
//!   Zero is accepted by the API and answered by the ledger with result `amount_zero` (4).
//! * A `Submit` batch has 1 ..= 8 192 commands and at most 8 MiB; any invalid command, unknown
//!   enum value or empty command rejects the whole batch with `INVALID_ARGUMENT` and nothing is
//!   applied. A valid batch yields one result per command: a stable numeric code (see
//!   `ledger::ResultCode`, mirrored by `suanpan.v1.ResultCode`), its snake_case name, and the log
//!   timestamp; commands are idempotent by id.
//! * Retry semantics are carried in the `x-suanpan-error` metadata of `UNAVAILABLE` errors
//!   ([`ErrorReason`]): `not_leader` (nothing applied; `x-suanpan-leader-addr` names the leader),
//!   `outcome_unknown` (may or may not be applied: retry with the same ids), `no_leader`,
//!   `bootstrapping`, `overloaded`, `read_not_confirmed`, `stopped`.
//! * Reads are linearizable (Raft ReadIndex) unless the request sets `allow_stale`.
//!
//! ## Authentication (see [`auth`] for the exact steps)
//! Every `Ledger`/`Admin` call carries `x-suanpan-key`, `x-suanpan-ts`, `x-suanpan-nonce` and
//! `x-suanpan-sig`: an Ed25519 signature over
//! `suanpan-v1\n{method path}\n{unix ms}\n{nonce}\n{hex sha256(request protobuf bytes)}`.
//! Keys and roles (payments: submit + reads; finance: reads; admin: everything) are replicated
//! ledger state (`RegisterClient` / `RevokeClient` commands). The check runs once per request in a
//! tower layer, before any decoding; a rejected request never reaches a handler.
//!
//! ## Boundaries
//! The ledger decides business outcomes; consensus decides order and durability; this crate only
//! validates shapes, authenticates, routes to the leader and translates. It never panics on
//! network input and bounds every queue, page and message.

// The client library: protocol, signing, wire conversions and the batching client. Builds
// without RocksDB, raft or the server (`default-features = false`).
pub mod client;
pub mod protocol;
pub mod signing;
#[cfg(feature = "statements")]
pub mod statement;
pub mod tls;
pub mod wire;

// The node (feature `server`, on by default).
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod backup;
#[cfg(feature = "server")]
pub mod datadir;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod identity;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod node;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod snapshots;
#[cfg(feature = "server")]
pub mod state_machine;
#[cfg(feature = "server")]
pub mod transport;
#[cfg(feature = "server")]
pub mod view;

/// Generated protobuf types and gRPC stubs for package `suanpan.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("suanpan.v1");
}

/// Encoded `FileDescriptorSet` of the contract (served by reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("suanpan_v1_descriptor");

pub use protocol::ErrorReason;
