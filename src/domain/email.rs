//! An email address as botwave stores it: trimmed, NFKC-normalized, lower-cased, plausibly
//! deliverable — and never a lookalike of another: invisible characters and parts that mix
//! alphabets (a Cyrillic `а` among Latin letters) are refused, because they would display
//! exactly like someone else's account in admin lists and the audit log.

use std::{collections::HashSet, fmt};

use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const MAX_LEN: usize = 254;

impl Email {
    /// Accepts `local@domain.tld` shapes; anything else is refused with a reason.
    pub fn parse(input: &str) -> Result<Self, String> {
        let email: String = input.trim().nfkc().collect::<String>().to_lowercase();
        if email.chars().any(is_invisible) {
            return Err("email must not contain invisible characters".into());
        }
        if email.is_empty() {
            return Err("email is required".into());
        }
        if email.len() > MAX_LEN {
            return Err(format!("email must be at most {MAX_LEN} characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("email must look like name@example.com".into());
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c == '@' || c.is_control());
        if !domain_ok || !local_ok {
            return Err("email must look like name@example.com".into());
        }
        if std::iter::once(local)
            .chain(domain.split('.'))
            .any(mixes_scripts)
        {
            return Err(
                "email must not mix alphabets (such as Latin and Cyrillic) in one part".into(),
            );
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Format and control characters: zero-width joiners and spaces, direction marks, soft
/// hyphens, tags — nothing a person types into an address on purpose.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// True when `part` has letters of more than one script (digits and punctuation belong to
/// every script).
fn mixes_scripts(part: &str) -> bool {
    let scripts: HashSet<Script> = part
        .chars()
        .map(|c| c.script())
        .filter(|script| !matches!(script, Script::Common | Script::Inherited | Script::Unknown))
        .collect();
    scripts.len() > 1
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn lookalikes_are_refused_and_compatibility_forms_folded() {
        for lookalike in [
            "bob\u{200d}@example.com",
            "b\u{200b}ob@example.com",
            "bob@ex\u{0430}mple.com", // Cyrillic а
            "b\u{03bf}b@example.com", // Greek ο
            "\u{202e}bob@example.com",
        ] {
            assert!(Email::parse(lookalike).is_err(), "{lookalike:?} accepted");
        }
        // Fullwidth letters are the same address as plain ones.
        assert_eq!(
            Email::parse("\u{ff22}ob@example.com").unwrap().as_str(),
            "bob@example.com"
        );
        // One script per part is fine, also when it is not Latin.
        assert!(Email::parse("иван@пример.рф").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@ex..com",
            "ada@@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
