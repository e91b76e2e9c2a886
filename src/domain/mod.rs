//! Validated domain values: once built, they are known to be well-formed.

mod email;
mod password;
mod phone;
mod role;

pub use email::Email;
pub use password::NewPassword;
pub use phone::PhoneNumber;
pub use role::Role;
