//! The points of the signup pipeline where policy plugins run.

/// What a policy plugin checks: the site name, or the HTML of its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Name,
    Html,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Name => "name",
            Hook::Html => "html",
        }
    }

    pub fn parse(value: &str) -> Result<Hook, String> {
        match value {
            "name" => Ok(Hook::Name),
            "html" => Ok(Hook::Html),
            other => Err(format!("unknown hook {other:?}; hooks are name and html")),
        }
    }
}
