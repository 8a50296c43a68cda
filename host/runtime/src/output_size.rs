//! The size of a call's result, as checked against the plugin's output limit.
//!
//! The limit is about payload: the bytes of strings and byte lists a plugin
//! hands back. Measuring the JSON encoding instead overstates binary results
//! up to four times (`list<u8>` becomes `[255,255,...]`) and escaped text,
//! so a binary certificate format would hit its limit at a quarter of it.
//! This serializer walks the value without building anything and counts each
//! string and byte by its length, each number by its width, and nothing for
//! field names, tags and punctuation.

use serde::ser::{self, Serialize};

/// Payload bytes of `value`; `u64::MAX` if it cannot be walked.
pub(crate) fn output_size<R: Serialize>(value: &R) -> u64 {
    let mut n = 0u64;
    match value.serialize(Counter(&mut n)) {
        Ok(()) => n,
        Err(_) => u64::MAX,
    }
}

#[derive(Debug)]
pub(crate) struct Never(String);

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Never(msg.to_string())
    }
}

struct Counter<'a>(&'a mut u64);

impl Counter<'_> {
    fn add(self, n: usize) -> Result<(), Never> {
        *self.0 = self.0.saturating_add(n as u64);
        Ok(())
    }
}

impl<'a> ser::Serializer for Counter<'a> {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Counter<'a>;
    type SerializeTuple = Counter<'a>;
    type SerializeTupleStruct = Counter<'a>;
    type SerializeTupleVariant = Counter<'a>;
    type SerializeMap = Counter<'a>;
    type SerializeStruct = Counter<'a>;
    type SerializeStructVariant = Counter<'a>;

    fn serialize_bool(self, _: bool) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Never> {
        self.add(2)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Never> {
        self.add(2)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_char(self, c: char) -> Result<(), Never> {
        self.add(c.len_utf8())
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.add(v.len())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.add(v.len())
    }
    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Counter<'a>, Never> {
        Ok(self)
    }
}

impl Counter<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(Counter(&mut *self.0))
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {
        $(
            impl ser::$trait for Counter<'_> {
                type Ok = ();
                type Error = Never;
                fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
                    self.element(value)
                }
                fn end(self) -> Result<(), Never> {
                    Ok(())
                }
            }
        )*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Counter<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
        self.element(key)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        self.element(value)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

impl ser::SerializeStruct for Counter<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.element(value)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Counter<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.element(value)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_payload_not_encoding() {
        // Bytes count one each, whatever their value (JSON would say ~4000).
        assert_eq!(output_size(&vec![255u8; 1000]), 1000);
        assert_eq!(output_size(&"x".repeat(5000)), 5000);
        // Quotes are payload, not escapes.
        assert_eq!(output_size(&"\"".repeat(100)), 100);
        assert_eq!(output_size(&()), 0);
        assert_eq!(output_size(&Some(7u32)), 4);
        let pairs = vec![("ab".to_string(), "cde".to_string()); 10];
        assert_eq!(output_size(&pairs), 50);
        let r: Result<Vec<u8>, String> = Ok(vec![1, 2, 3]);
        assert_eq!(output_size(&r), 3);
    }
}
