//! The vocabularies of the dialects that more than their door speaks: the objects, ids, dates
//! and status codes a door answers with are also what their notifications carry.

pub mod astandes;
pub mod ovh;
pub mod reach;
