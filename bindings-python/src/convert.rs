//! Payloads to Python objects and back, without an intermediate tree: JSON
//! and MessagePack are decoded straight into Python objects, and Python
//! objects are serialized straight into the wire encoding.

use std::cell::RefCell;
use std::fmt;

use livegate_core::payload::PayloadKind;
use livegate_core::{Encoding, ErrorCode, Payload};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq};

use crate::errors::{error, Kind};

/// Deepest nesting encoded, as the gateway refuses deeper payloads anyway;
/// it also stops a list that contains itself.
const MAX_DEPTH: usize = 128;

/// A Python value as a payload: `bytes`-like values are binary payloads,
/// anything else is encoded in `encoding`.
pub fn to_payload(value: &Bound<'_, PyAny>, encoding: Encoding) -> PyResult<Payload> {
    if let Some(bytes) = as_bytes(value)? {
        return Ok(Payload::binary(bytes));
    }
    let ctx = Context {
        path: RefCell::new(Vec::new()),
        failure: RefCell::new(None),
        msgpack: encoding == Encoding::Msgpack,
    };
    let root = PyValue {
        obj: value,
        ctx: &ctx,
        depth: 0,
    };
    let encoded = match encoding {
        Encoding::Json => serde_json::to_vec(&root).map_err(|e| e.to_string()),
        Encoding::Msgpack => rmp_serde::to_vec(&root).map_err(|e| e.to_string()),
    };
    let bytes = match encoded {
        Ok(bytes) => bytes,
        Err(serde_error) => {
            let taken = ctx.failure.borrow_mut().take();
            let python = match taken {
                Some(Failure::Python(err)) => Some(err),
                other => {
                    *ctx.failure.borrow_mut() = other;
                    None
                }
            };
            if let Some(err) = python {
                return Err(err);
            }
            let at = ctx.failure_path();
            return Err(error(
                Kind::Payload,
                ErrorCode::BadPayload,
                format!("cannot encode the data{at}: {serde_error}"),
            ));
        }
    };
    let payload = match encoding {
        Encoding::Json => Payload::from_json(bytes),
        Encoding::Msgpack => Payload::from_msgpack(bytes),
    };
    payload.map_err(|e| error(Kind::Payload, ErrorCode::BadPayload, e.to_string()))
}

/// The bytes of a `bytes`, `bytearray` or `memoryview`, if it is one.
fn as_bytes(value: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Some(b.as_bytes().to_vec()));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(Some(b.to_vec()));
    }
    if value.is_instance_of::<PyMemoryView>() {
        let b = value.call_method0("tobytes")?;
        return Ok(Some(b.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    Ok(None)
}

/// A payload as Python objects: JSON and MessagePack decoded, binary as `bytes`.
pub fn from_payload<'py>(py: Python<'py>, payload: &Payload) -> PyResult<Bound<'py, PyAny>> {
    let bytes = payload.as_bytes();
    let decoded = match payload.kind() {
        PayloadKind::Binary => return Ok(PyBytes::new(py, bytes).into_any()),
        PayloadKind::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            PySeed(py).deserialize(&mut de).map_err(|e| e.to_string())
        }
        PayloadKind::Msgpack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes.as_ref());
            PySeed(py).deserialize(&mut de).map_err(|e| e.to_string())
        }
    };
    decoded.map_err(|e| {
        error(
            Kind::Protocol,
            ErrorCode::BadPayload,
            format!("undecodable payload: {e}"),
        )
    })
}

enum Failure {
    /// A Python exception raised while reading the value (e.g. by `__iter__`).
    Python(PyErr),
    /// Where a value could not be encoded.
    At(String),
}

struct Context {
    path: RefCell<Vec<String>>,
    failure: RefCell<Option<Failure>>,
    msgpack: bool,
}

impl Context {
    fn fail<E: ser::Error>(&self, why: impl fmt::Display) -> E {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(Failure::At(self.path.borrow().concat()));
        }
        E::custom(why)
    }

    fn python<E: ser::Error>(&self, err: PyErr) -> E {
        let text = err.to_string();
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(Failure::Python(err));
        }
        E::custom(text)
    }

    fn failure_path(&self) -> String {
        match &*self.failure.borrow() {
            Some(Failure::At(p)) if !p.is_empty() => format!(" at data{p}"),
            _ => String::new(),
        }
    }
}

struct PyValue<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    ctx: &'a Context,
    depth: usize,
}

impl PyValue<'_, '_> {
    fn child<'b, 'py>(&'b self, obj: &'b Bound<'py, PyAny>) -> PyValue<'b, 'py> {
        PyValue {
            obj,
            ctx: self.ctx,
            depth: self.depth + 1,
        }
    }
}

impl Serialize for PyValue<'_, '_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let obj = self.obj;
        let ctx = self.ctx;
        if self.depth > MAX_DEPTH {
            return Err(ctx.fail(format_args!(
                "nested deeper than {MAX_DEPTH} levels (or a container holds itself)"
            )));
        }
        if obj.is_none() {
            return s.serialize_unit();
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return s.serialize_bool(b.is_true());
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(v) = obj.extract::<i64>() {
                return s.serialize_i64(v);
            }
            if let Ok(v) = obj.extract::<u64>() {
                return s.serialize_u64(v);
            }
            return Err(ctx.fail("the integer does not fit in 64 bits"));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let v = f.value();
            if !v.is_finite() && !ctx.msgpack {
                return Err(ctx.fail(format_args!("{v} is not a JSON number")));
            }
            return s.serialize_f64(v);
        }
        if let Ok(text) = obj.cast::<PyString>() {
            let text = text.to_cow().map_err(|e| ctx.python(e))?;
            return s.serialize_str(&text);
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            let mut map = s.serialize_map(Some(dict.len()))?;
            for (k, v) in dict.iter() {
                let shown = k.repr().map(|r| r.to_string()).unwrap_or_default();
                ctx.path.borrow_mut().push(format!("[{shown}]"));
                let key = dict_key(&k).map_err(|why| ctx.fail::<S::Error>(why))?;
                map.serialize_entry(&key, &self.child(&v))?;
                ctx.path.borrow_mut().pop();
            }
            return map.end();
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            let len = obj.len().map_err(|e| ctx.python(e))?;
            let mut seq = s.serialize_seq(Some(len))?;
            for (i, item) in obj.try_iter().map_err(|e| ctx.python(e))?.enumerate() {
                let item = item.map_err(|e| ctx.python(e))?;
                ctx.path.borrow_mut().push(format!("[{i}]"));
                seq.serialize_element(&self.child(&item))?;
                ctx.path.borrow_mut().pop();
            }
            return seq.end();
        }
        if let Some(bytes) = as_bytes(obj).map_err(|e| ctx.python(e))? {
            if ctx.msgpack {
                return s.serialize_bytes(&bytes);
            }
            return Err(ctx.fail(
                "bytes inside a JSON value cannot be encoded: decode them to str, \
                 publish the bytes alone, or use encoding=\"msgpack\"",
            ));
        }
        // Pydantic models, as FastAPI apps have them at hand.
        if let Ok(dump) = obj.getattr("model_dump") {
            if dump.is_callable() {
                let kwargs = PyDict::new(obj.py());
                kwargs.set_item("mode", "json").map_err(|e| ctx.python(e))?;
                let plain = dump.call((), Some(&kwargs)).map_err(|e| ctx.python(e))?;
                return self.child(&plain).serialize(s);
            }
        }
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        Err(ctx.fail(format_args!(
            "an object of type {type_name} cannot be encoded; use dict, list, tuple, str, \
             int, float, bool, None (or bytes on their own)"
        )))
    }
}

/// JSON object keys are strings; numbers and booleans become their text,
/// as Python's `json.dumps` does.
fn dict_key(key: &Bound<'_, PyAny>) -> Result<String, String> {
    if let Ok(s) = key.cast::<PyString>() {
        return s
            .to_cow()
            .map(|c| c.into_owned())
            .map_err(|e| e.to_string());
    }
    if let Ok(b) = key.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_owned());
    }
    if key.is_instance_of::<PyInt>() || key.is_instance_of::<PyFloat>() {
        return key.str().map(|s| s.to_string()).map_err(|e| e.to_string());
    }
    let type_name = key
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(format!(
        "dict keys must be str, int, float or bool, not {type_name}"
    ))
}

/// Builds Python objects while a serde deserializer reads.
#[derive(Clone, Copy)]
struct PySeed<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn py_err<E: de::Error>(e: PyErr) -> E {
    E::custom(e.to_string())
}

impl<'de, 'py> Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or MessagePack value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(PyBytes::new(self.0, v).into_any())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(self)? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key_seed(self)? {
            let value = map.next_value_seed(self)?;
            dict.set_item(key, value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}
