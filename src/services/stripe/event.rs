//! Stripe event envelopes and the few objects berth reads from them.
//!
//! Parsing is lenient about everything berth does not use, so events of other API versions
//! (older or newer than the examples in `webhooks/stripe/`) still parse: only the envelope's
//! `id`, `type` and `created` are required. Objects are read field by field, with the fields
//! that moved between API versions read from both places (an invoice's subscription is
//! `parent.subscription_details.subscription` since 2025-03-31.basil, `subscription` before).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A Stripe event id, `evt_` followed by letters and digits: the deduplication key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventId(String);

impl StripeEventId {
    pub fn parse(value: &str) -> Result<Self, String> {
        let rest = value
            .strip_prefix("evt_")
            .ok_or_else(|| "an event id starts with evt_".to_owned())?;
        if rest.is_empty()
            || rest.len() > 255
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err("an event id is evt_ followed by up to 255 letters, digits or _".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A verified event: its envelope, with `data.object` kept as JSON for the processor.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: StripeEventId,
    /// The event type, e.g. `checkout.session.completed`.
    pub kind: String,
    /// Stripe's `created`, in Unix seconds.
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "whole_seconds")]
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

/// `created` as Stripe sends it, an integer; JSON also spells the same number `1764547200.0`
/// (JSON Schema's `integer` allows it), which reads the same.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    crate::domain::whole_number::of(&number)
        .ok_or_else(|| D::Error::custom("created must be whole Unix seconds"))
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    object: serde_json::Value,
}

impl Event {
    /// Parses the envelope of a (verified) body. The error says what is wrong, for the `400`.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a Stripe event: {e}"))?;
        let id = StripeEventId::parse(&envelope.id)?;
        let kind_ok = !envelope.kind.is_empty()
            && envelope.kind.len() <= 128
            && envelope
                .kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        if !kind_ok {
            return Err("the event type is not a Stripe event type".into());
        }
        if envelope.created <= 0 {
            return Err("the event has no creation time".into());
        }
        Ok(Self {
            id,
            kind: envelope.kind,
            created: envelope.created,
            livemode: envelope.livemode,
            api_version: envelope.api_version,
            object: envelope.data.map(|d| d.object).unwrap_or_default(),
        })
    }

    /// `created` in Unix milliseconds, the unit of every timestamp column.
    pub fn created_at_ms(&self) -> i64 {
        self.created.saturating_mul(1000)
    }

    /// `data.object` as a `T`; the error names what is missing.
    pub fn object<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(&self.object)
            .map_err(|e| format!("data.object of a {} event does not parse: {e}", self.kind))
    }

    fn field(&self, pointer: &str) -> Option<&str> {
        id_of(self.object.pointer(pointer)?)
    }

    /// `data.object.id`.
    pub fn object_id(&self) -> Option<&str> {
        self.field("/id")
    }

    /// The customer the object belongs to (a subscription, invoice or checkout session).
    pub fn customer_id(&self) -> Option<&str> {
        self.field("/customer")
    }

    /// The subscription the object is, or belongs to.
    pub fn subscription_id(&self) -> Option<&str> {
        if self.object.get("object").and_then(|o| o.as_str()) == Some("subscription") {
            return self.object_id();
        }
        self.field("/parent/subscription_details/subscription")
            .or_else(|| self.field("/subscription"))
    }
}

/// A reference Stripe may send as an id or, when expanded, as the object: its id either way.
/// Only values shaped like Stripe ids (letters, digits and `_`, at most 255) count, so what is
/// stored and indexed beside an event stays small.
fn id_of(value: &serde_json::Value) -> Option<&str> {
    let id = match value {
        serde_json::Value::String(id) => id.as_str(),
        serde_json::Value::Object(object) => object.get("id")?.as_str()?,
        _ => return None,
    };
    let shaped = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    shaped.then_some(id)
}

/// An id or an expanded object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
}

/// A checkout's line item or a subscription's item: what berth reads of either is its price.
#[derive(Debug, Clone, Deserialize)]
pub struct PricedItem {
    #[serde(default)]
    pub price: Option<Price>,
}

/// The price of the first item that has one.
fn first_price(items: Option<&List<PricedItem>>) -> Option<&str> {
    items?
        .data
        .iter()
        .find_map(|item| item.price.as_ref())
        .map(|price| price.id.as_str())
}

/// `checkout.session`: what berth reads of it.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub customer: Option<Expandable>,
    #[serde(default)]
    pub customer_details: Option<CustomerDetails>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub subscription: Option<Expandable>,
    /// `paid`, `unpaid` (an asynchronous payment method is still settling) or
    /// `no_payment_required`.
    pub payment_status: String,
    /// Only present when the event's sender expanded it.
    #[serde(default)]
    pub line_items: Option<List<PricedItem>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomerDetails {
    #[serde(default)]
    pub email: Option<String>,
}

impl CheckoutSession {
    /// Paid, or nothing to pay: the site may be provisioned.
    pub fn is_paid(&self) -> bool {
        matches!(self.payment_status.as_str(), "paid" | "no_payment_required")
    }

    pub fn email(&self) -> Option<&str> {
        self.customer_details
            .as_ref()
            .and_then(|d| d.email.as_deref())
            .or(self.customer_email.as_deref())
    }

    /// The price of the first line item, when the sender expanded `line_items`.
    pub fn price_id(&self) -> Option<&str> {
        first_price(self.line_items.as_ref())
    }
}

/// `subscription`: what berth reads of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: Expandable,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`, `canceled`,
    /// `unpaid` or `paused`.
    pub status: String,
    #[serde(default)]
    pub items: Option<List<PricedItem>>,
}

impl Subscription {
    /// The price of the first item: the plan, for a one-site subscription.
    pub fn price_id(&self) -> Option<&str> {
        first_price(self.items.as_ref())
    }
}

/// `invoice`: what berth reads of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default)]
    pub attempt_count: Option<i64>,
    #[serde(default)]
    pub billing_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Event {
        let path = format!("{}/webhooks/stripe/{name}", env!("CARGO_MANIFEST_DIR"));
        Event::parse(&std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn created_reads_whole_seconds_however_json_spells_them() {
        let body = |created: &str| {
            format!(
                r#"{{"id":"evt_1","type":"invoice.paid","created":{created},"data":{{"object":{{}}}}}}"#
            )
        };
        assert_eq!(
            Event::parse(body("1764547200").as_bytes()).unwrap().created,
            1764547200
        );
        assert_eq!(
            Event::parse(body("1764547200.0").as_bytes())
                .unwrap()
                .created,
            1764547200
        );
        for refused in [
            "1764547200.5",
            "1e300",
            "18446744073709551615",
            "\"1764547200\"",
        ] {
            assert!(Event::parse(body(refused).as_bytes()).is_err(), "{refused}");
        }
    }

    #[test]
    fn every_example_payload_parses_with_its_references() {
        let checkout = example("checkout.session.completed.json");
        assert_eq!(checkout.kind, "checkout.session.completed");
        assert_eq!(checkout.created_at_ms(), checkout.created * 1000);
        assert_eq!(checkout.customer_id(), Some("cus_TSx1rEhAl9BjkQ"));
        assert_eq!(
            checkout.subscription_id(),
            Some("sub_1SVtEh2eZvKYlo2CfSg3Uy0Q")
        );
        let session: CheckoutSession = checkout.object().unwrap();
        assert!(session.is_paid());
        assert_eq!(session.email(), Some("ann@example.com"));

        let invoice = example("invoice.paid.json");
        assert_eq!(
            invoice.subscription_id(),
            Some("sub_1SVtEh2eZvKYlo2CfSg3Uy0Q")
        );
        assert!(invoice.object_id().unwrap().starts_with("in_"));

        let subscription = example("customer.subscription.updated.plan-change.json");
        assert_eq!(subscription.subscription_id(), subscription.object_id());
        let sub: Subscription = subscription.object().unwrap();
        assert_eq!(sub.price_id(), Some("price_1SVtA42eZvKYlo2CmR8Kp0Xz"));

        for entry in
            std::fs::read_dir(format!("{}/webhooks/stripe", env!("CARGO_MANIFEST_DIR"))).unwrap()
        {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let event = Event::parse(&std::fs::read(&path).unwrap()).unwrap();
                assert!(event.customer_id().is_some(), "{}", path.display());
                assert!(event.subscription_id().is_some(), "{}", path.display());
            }
        }
    }

    #[test]
    fn older_api_versions_and_expanded_references_are_read_too() {
        let legacy = Event::parse(
            br#"{"id":"evt_1","type":"invoice.paid","created":5,"data":{"object":{"id":"in_1","object":"invoice","customer":{"id":"cus_1","object":"customer"},"subscription":"sub_1"}}}"#,
        )
        .unwrap();
        assert_eq!(legacy.subscription_id(), Some("sub_1"));
        assert_eq!(legacy.customer_id(), Some("cus_1"));
        let odd = Event::parse(
            format!(r#"{{"id":"evt_2","type":"invoice.paid","created":5,"data":{{"object":{{"id":"in 1","customer":"{}"}}}}}}"#, "c".repeat(300)).as_bytes(),
        )
        .unwrap();
        assert_eq!(odd.object_id(), None, "not shaped like an id");
        assert_eq!(odd.customer_id(), None, "too long to be an id");
        assert!(legacy.api_version.is_none() && !legacy.livemode);
    }

    #[test]
    fn envelopes_without_id_type_or_time_are_refused() {
        let bad: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"[]", "not an object"),
            (br#"{"type":"x.y","created":1}"#, "no id"),
            (
                br#"{"id":"abc","type":"x.y","created":1}"#,
                "not an event id",
            ),
            (br#"{"id":"evt_1","created":1}"#, "no type"),
            (
                br#"{"id":"evt_1","type":"x y","created":1}"#,
                "a type with a space",
            ),
            (
                br#"{"id":"evt_1","type":"x.y","created":"2025-01-01T00:00:00Z"}"#,
                "a thin event's created",
            ),
        ];
        for (body, why) in bad {
            assert!(Event::parse(body).is_err(), "{why}");
        }
        let unknown = Event::parse(
            br#"{"id":"evt_1","type":"radar.early_fraud_warning.created","created":1}"#,
        )
        .unwrap();
        assert!(
            unknown.object_id().is_none(),
            "unknown types parse; their object is optional"
        );
    }
}
