//! The SASL mechanisms the diagnostics speak, and the choice among those a server offers.

use relais_client::{ClientError, SmtpClient};
use relais_proto::Reply;

/// A SASL mechanism relais can authenticate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH CRAM-MD5 (RFC 2195): the password never travels.
    CramMd5,
    /// AUTH XOAUTH2 (Gmail, Office 365): the secret is an OAuth 2.0 bearer token.
    XOAuth2,
}

/// Why no mechanism could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotOffered {
    /// The one asked for is not offered.
    Wanted(Mechanism),
    /// None was asked for, and the server offers neither PLAIN nor LOGIN.
    Neither,
}

impl Mechanism {
    /// `PLAIN` or `LOGIN`, as in EHLO.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::XOAuth2 => "XOAUTH2",
        }
    }

    /// `wanted` if the server offers it; with none wanted, the first of PLAIN and LOGIN offered.
    pub(crate) fn choose(
        wanted: Option<Mechanism>,
        offered: &[String],
    ) -> Result<Mechanism, NotOffered> {
        let is_offered = |m: Mechanism| offered.iter().any(|o| o == m.name());
        match wanted {
            Some(m) if is_offered(m) => Ok(m),
            Some(m) => Err(NotOffered::Wanted(m)),
            None => [Mechanism::Plain, Mechanism::Login]
                .into_iter()
                .find(|&m| is_offered(m))
                .ok_or(NotOffered::Neither),
        }
    }

    /// Runs the exchange on `client` (`password` is the token for XOAUTH2).
    pub(crate) async fn authenticate(
        self,
        client: &mut SmtpClient,
        user: &str,
        password: &str,
    ) -> Result<Reply, ClientError> {
        match self {
            Mechanism::Plain => client.auth_plain(user, password).await,
            Mechanism::Login => client.auth_login(user, password).await,
            Mechanism::CramMd5 => client.auth_cram_md5(user, password).await,
            Mechanism::XOAuth2 => client.auth_xoauth2(user, password).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_among_the_offered() {
        use Mechanism::{CramMd5, Login, Plain, XOAuth2};
        // (wanted, offered, chosen)
        type Row<'a> = (
            Option<Mechanism>,
            &'a [&'a str],
            Result<Mechanism, NotOffered>,
        );
        let table: &[Row] = &[
            (None, &["PLAIN", "LOGIN"], Ok(Plain)),
            (None, &["LOGIN", "PLAIN"], Ok(Plain)),
            (None, &["CRAM-MD5", "LOGIN"], Ok(Login)),
            (None, &["CRAM-MD5"], Err(NotOffered::Neither)),
            (None, &[], Err(NotOffered::Neither)),
            (Some(Login), &["PLAIN", "LOGIN"], Ok(Login)),
            (Some(Login), &["PLAIN"], Err(NotOffered::Wanted(Login))),
            (Some(Plain), &["plain"], Err(NotOffered::Wanted(Plain))),
            (Some(CramMd5), &["PLAIN", "CRAM-MD5"], Ok(CramMd5)),
            (Some(CramMd5), &["PLAIN"], Err(NotOffered::Wanted(CramMd5))),
            (Some(XOAuth2), &["XOAUTH2", "OAUTHBEARER"], Ok(XOAuth2)),
            (None, &["XOAUTH2"], Err(NotOffered::Neither)),
        ];
        for (wanted, offered, chosen) in table {
            let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                Mechanism::choose(*wanted, &offered),
                *chosen,
                "{wanted:?} {offered:?}"
            );
        }
    }
}
