//! The rules a new password must meet. Existing passwords are only ever compared to their hash.

/// A password that may be set on an account.
pub struct NewPassword(String);

const MIN_LEN: usize = 10;
const MAX_LEN: usize = 256;

impl NewPassword {
    /// Length rules plus a floor on variety, so `aaaaaaaaaa` and `1234567890` are refused.
    pub fn parse(input: &str) -> Result<Self, String> {
        let chars = input.chars().count();
        if chars < MIN_LEN {
            return Err(format!("password must be at least {MIN_LEN} characters"));
        }
        if chars > MAX_LEN {
            return Err(format!("password must be at most {MAX_LEN} characters"));
        }
        let mut distinct: Vec<char> = input.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let classes = [
            input.chars().any(|c| c.is_lowercase()),
            input.chars().any(|c| c.is_uppercase()),
            input.chars().any(|c| c.is_numeric()),
            input.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|present| **present)
        .count();
        if distinct.len() < 5 || classes < 2 {
            return Err(
                "password is too weak: use at least 5 different characters from 2 of lower case, upper case, digits, symbols"
                    .into(),
            );
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reasonable_passwords() {
        assert!(NewPassword::parse("correct horse battery").is_ok());
        assert!(NewPassword::parse("Tr0ub4dor&3").is_ok());
    }

    #[test]
    fn rejects_short_repetitive_or_single_class_passwords() {
        for weak in ["short1", "aaaaaaaaaaaa", "1234567890", "abcdefghijkl"] {
            assert!(NewPassword::parse(weak).is_err(), "{weak:?} accepted");
        }
    }
}
