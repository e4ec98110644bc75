//! [`Keyword`]: the ssh_config keywords remex understands, as
//! ssh_config(5) spells them.

/// The keywords remex understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Host,
    Match,
    Include,
    HostName,
    User,
    Port,
    IdentityFile,
    CertificateFile,
    ProxyJump,
    ProxyCommand,
    ConnectTimeout,
    ServerAliveInterval,
    ServerAliveCountMax,
    AddressFamily,
}

impl Keyword {
    /// Every keyword, for lookups.
    const ALL: [Keyword; 14] = [
        Keyword::Host,
        Keyword::Match,
        Keyword::Include,
        Keyword::HostName,
        Keyword::User,
        Keyword::Port,
        Keyword::IdentityFile,
        Keyword::CertificateFile,
        Keyword::ProxyJump,
        Keyword::ProxyCommand,
        Keyword::ConnectTimeout,
        Keyword::ServerAliveInterval,
        Keyword::ServerAliveCountMax,
        Keyword::AddressFamily,
    ];

    /// The keyword as ssh_config(5) spells it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Keyword::Host => "Host",
            Keyword::Match => "Match",
            Keyword::Include => "Include",
            Keyword::HostName => "HostName",
            Keyword::User => "User",
            Keyword::Port => "Port",
            Keyword::IdentityFile => "IdentityFile",
            Keyword::CertificateFile => "CertificateFile",
            Keyword::ProxyJump => "ProxyJump",
            Keyword::ProxyCommand => "ProxyCommand",
            Keyword::ConnectTimeout => "ConnectTimeout",
            Keyword::ServerAliveInterval => "ServerAliveInterval",
            Keyword::ServerAliveCountMax => "ServerAliveCountMax",
            Keyword::AddressFamily => "AddressFamily",
        }
    }

    /// The keyword written `word`, in any case.
    pub(super) fn find(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|keyword| keyword.name().eq_ignore_ascii_case(word))
    }
}
