//! Unit tests of the adapter against mockito (and a few raw TCP servers for resets, stalls
//! and slow answers). Time goes through `ManualClock`: backoff and `Retry-After` waits are
//! asserted exactly, without real sleeping.

mod behaviour;
mod endpoints;
mod redaction;
mod support;
