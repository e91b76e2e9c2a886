//! A phone number as WhatsApp addresses it: the E.164 digits without `+` (`15550001111`), which
//! is also the user part of its JID (`15550001111@s.whatsapp.net`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// E.164 allows at most 15 digits; shorter than 7 is no real subscriber number anywhere.
const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 15;

impl PhoneNumber {
    /// Accepts the ways people write numbers in international form — `+1 (555) 000-1111`,
    /// `1-555-000-1111`, `0015550001111`, a WhatsApp JID — and refuses anything else with a reason.
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("phone number is required".into());
        }
        let number = trimmed
            .strip_suffix("@s.whatsapp.net")
            .or_else(|| trimmed.strip_suffix("@c.us"))
            .unwrap_or(trimmed);
        if let Some(bad) = number
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.')))
        {
            return Err(format!(
                "phone number contains {bad:?}; use digits in international form, e.g. +15550001111"
            ));
        }
        if number.chars().skip(1).any(|c| c == '+') {
            return Err("phone number may only start with +".into());
        }
        let mut digits: String = number.chars().filter(char::is_ascii_digit).collect();
        // International call prefix instead of '+'.
        if !number.starts_with('+')
            && let Some(rest) = digits.strip_prefix("00")
        {
            digits = rest.to_owned();
        }
        if digits.starts_with('0') {
            return Err("phone number must start with its country code, e.g. +44…, not 0".into());
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(format!(
                "phone number must have {MIN_DIGITS} to {MAX_DIGITS} digits including the country code"
            ));
        }
        Ok(Self(digits))
    }

    /// The digits, without `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_common_international_forms() {
        for input in [
            "+1 (555) 000-1111",
            "15550001111",
            "1.555.000.1111",
            "0015550001111",
            "15550001111@s.whatsapp.net",
            " +15550001111 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().digits(),
                "15550001111",
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_whatsapp_cannot_address() {
        for input in [
            "",
            "abc",
            "+1 555 CALL NOW",
            "0555 000 1111",
            "123",
            "+1234567890123456",
            "1+5550001111",
            "group@g.us",
        ] {
            assert!(PhoneNumber::parse(input).is_err(), "{input:?} accepted");
        }
    }
}
