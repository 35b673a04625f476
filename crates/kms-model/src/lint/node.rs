//! A YAML or JSON document as a plain tree that keeps duplicate keys, built within a budget.
//!
//! serde's derived decoders drop what strict decoding must see (duplicate and unknown keys with
//! their paths), and a generic value type expands YAML aliases without limit. This tree keeps
//! every mapping entry in order and stops once the document grows past a fixed number of nodes,
//! so an alias bomb costs a bounded amount of memory.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The most nodes a document may expand to, aliases included. Real EncryptionConfiguration files
/// have a few hundred.
pub(crate) const MAX_NODES: usize = 100_000;

/// One value of the document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, entries in document order, duplicates kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The type's name in error messages, as JSON would call it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::Seq(_) => "a list",
            Self::Map(_) => "an object",
        }
    }

    /// A mapping key as the JSON key kube-apiserver's YAML-to-JSON step would make of it.
    pub(crate) fn as_key(&self) -> Option<String> {
        match self {
            Self::Str(text) => Some(text.clone()),
            Self::Int(number) => Some(number.to_string()),
            Self::Bool(flag) => Some(flag.to_string()),
            Self::Float(number) => Some(number.to_string()),
            Self::Null => Some("null".to_owned()),
            Self::Seq(_) | Self::Map(_) => None,
        }
    }
}

/// Why a document could not be read as a tree.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// The YAML or JSON syntax is broken; the parser's own message.
    Syntax(String),
    /// The document expands to more than [`MAX_NODES`] nodes.
    TooLarge,
}

/// Parses a whole document: JSON when it starts with `{`, YAML otherwise, as kube-apiserver's
/// decoder tells them apart.
pub(crate) fn parse(text: &str) -> Result<Node, ParseError> {
    let budget = Cell::new(MAX_NODES);
    let seed = NodeSeed { budget: &budget };
    let result = if text.trim_start().starts_with('{') {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut deserializer)
            .and_then(|node| deserializer.end().map(|()| node))
            .map_err(|err| err.to_string())
    } else {
        seed.deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|err| err.to_string())
    };
    result.map_err(|message| {
        if budget.get() == 0 { ParseError::TooLarge } else { ParseError::Syntax(message) }
    })
}

/// Deserializes one node, charging it to the shared budget.
#[derive(Clone, Copy)]
struct NodeSeed<'b> {
    budget: &'b Cell<usize>,
}

impl NodeSeed<'_> {
    fn charge<E: de::Error>(self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) if left > 0 => {
                self.budget.set(left);
                Ok(())
            }
            _ => {
                self.budget.set(0);
                Err(E::custom(format_args!("document expands to more than {MAX_NODES} values")))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Int(i128::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Int(i128::from(value)))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Int(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Node, E> {
        self.charge()?;
        Ok(i128::try_from(value).map_or(Node::Float(value as f64), Node::Int))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Float(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Str(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Node, E> {
        self.charge()?;
        Ok(Node::Str(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.charge()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.charge()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(self)? {
            let value = map.next_value_seed(self)?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Node, A::Error> {
        Err(de::Error::custom("YAML tags other than the standard ones are not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let node = parse("a: 1\nb: x\na: 2\n").unwrap();
        let Node::Map(entries) = node else { panic!("not a map") };
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.as_key().unwrap()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(entries[2].1, Node::Int(2));
    }

    #[test]
    fn reads_json_with_duplicates() {
        let node = parse(r#" {"a": [1, 2.5, null, true], "a": "x"}"#).unwrap();
        let Node::Map(entries) = node else { panic!("not a map") };
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].1,
            Node::Seq(vec![Node::Int(1), Node::Float(2.5), Node::Null, Node::Bool(true)])
        );
    }

    #[test]
    fn stops_an_alias_bomb() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let prev = level - 1;
            let refs = vec![format!("*a{prev}"); 10].join(", ");
            doc.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        assert!(matches!(parse(&doc), Err(ParseError::TooLarge | ParseError::Syntax(_))));
    }

    #[test]
    fn stops_a_wide_alias_fan_out() {
        let items = vec!["1"; 5_000].join(", ");
        let refs = vec!["*big"; 5_000].join(", ");
        let doc = format!("big: &big [{items}]\nall: [{refs}]\n");
        assert!(matches!(parse(&doc), Err(ParseError::TooLarge)));
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing_the_stack() {
        let doc = "[".repeat(10_000);
        assert!(matches!(parse(&doc), Err(ParseError::Syntax(_))));
        let json = format!("{{\"a\": {}", "[".repeat(10_000));
        assert!(matches!(parse(&json), Err(ParseError::Syntax(_))));
    }
}
