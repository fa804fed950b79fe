//! The signing side: `SigV4` header auth for backend requests and the load generator, presigned
//! URLs, and the seed of aws-chunked streams. Uses the very canonicalisation the verifier uses.

use super::canonical::{
    self, canonical_query, canonical_request, canonical_uri, format_amz_date, hex32_string,
    signing_key, string_to_sign, uri_encode_into, ALGORITHM_V4,
};
use super::SignatureChain;

/// Who signs and for which scope.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    /// The access key id.
    pub access_key: &'a str,
    /// The secret access key.
    pub secret: &'a str,
    /// The region of the scope, e.g. `us-east-1`.
    pub region: &'a str,
    /// The service of the scope (`s3`).
    pub service: &'a str,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The result of signing a request head: the headers to add, and what a chunked body needs.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    /// The `Authorization` header value.
    pub authorization: String,
    /// The `x-amz-date` header value (it is signed; send it).
    pub amz_date: String,
    /// The `x-amz-content-sha256` header value (it is signed; send it).
    pub content_sha256: String,
    /// The request signature; the seed of an aws-chunked body's chain.
    pub signature: [u8; 32],
    /// The chain that signs the chunks of an aws-chunked body after this head.
    pub chain: SignatureChain,
}

impl Signer<'_> {
    fn scope(&self, amz_date: &str) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            &amz_date[..8],
            self.region,
            self.service
        )
    }

    /// Signs a request head with `SigV4` header auth.
    ///
    /// `headers` are the headers to sign (they must include `host`); `x-amz-date` and
    /// `x-amz-content-sha256` are added to the signed set and returned for the caller to send.
    /// `payload_hash` is a lower-case hex SHA-256, `UNSIGNED-PAYLOAD` or a `STREAMING-*` value.
    /// `raw_path` and `raw_query` are as they will be sent on the wire.
    #[must_use]
    pub fn sign_headers(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
        now_unix_s: i64,
    ) -> SignedRequest {
        let amz_date = format_amz_date(now_unix_s);
        let mut all: Vec<(String, &str)> = headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("x-amz-date")
                    && !n.eq_ignore_ascii_case("x-amz-content-sha256")
            })
            .map(|(n, v)| (n.to_ascii_lowercase(), *v))
            .collect();
        all.push(("x-amz-date".to_owned(), &amz_date));
        all.push(("x-amz-content-sha256".to_owned(), payload_hash));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        let signed_headers = names.join(";");
        let pairs: Vec<(&str, &str)> = all.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let canonical = canonical_request(
            method,
            &canonical_uri(raw_path),
            &canonical_query(raw_query, None),
            &pairs,
            &signed_headers,
            payload_hash,
        );
        let scope = self.scope(&amz_date);
        let to_sign = string_to_sign(&amz_date, &scope, &canonical);
        let key = signing_key(self.secret, &amz_date[..8], self.region, self.service);
        let signature = canonical::hmac_sha256(&key, to_sign.as_bytes());
        let authorization = format!(
            "{ALGORITHM_V4} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
            self.access_key,
            hex32_string(&signature)
        );
        SignedRequest {
            authorization,
            chain: SignatureChain::new(key, &amz_date, &scope, signature),
            amz_date,
            content_sha256: payload_hash.to_owned(),
            signature,
        }
    }

    /// Presigns a request: returns the full query string to send (the caller's `raw_query`
    /// parameters followed by the `X-Amz-*` ones, `X-Amz-Signature` last).
    ///
    /// `headers` are the headers to sign (at least `host`); the payload is unsigned.
    #[must_use]
    pub fn presign(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &[(&str, &str)],
        expires_s: u32,
        now_unix_s: i64,
    ) -> String {
        let amz_date = format_amz_date(now_unix_s);
        let scope = self.scope(&amz_date);
        let mut names: Vec<String> = headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        let signed_headers = names.join(";");
        let mut query = String::with_capacity(raw_query.len() + 256);
        query.push_str(raw_query);
        let mut add = |name: &str, value: &str| {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(name);
            query.push('=');
            uri_encode_into(&mut query, value.as_bytes(), false);
        };
        add("X-Amz-Algorithm", ALGORITHM_V4);
        add("X-Amz-Credential", &format!("{}/{scope}", self.access_key));
        add("X-Amz-Date", &amz_date);
        add("X-Amz-Expires", &expires_s.to_string());
        add("X-Amz-SignedHeaders", &signed_headers);
        let canonical = canonical_request(
            method,
            &canonical_uri(raw_path),
            &canonical_query(&query, None),
            headers,
            &signed_headers,
            "UNSIGNED-PAYLOAD",
        );
        let to_sign = string_to_sign(&amz_date, &scope, &canonical);
        let key = signing_key(self.secret, &amz_date[..8], self.region, self.service);
        let signature = canonical::hmac_sha256(&key, to_sign.as_bytes());
        query.push_str("&X-Amz-Signature=");
        query.push_str(&hex32_string(&signature));
        query
    }
}
