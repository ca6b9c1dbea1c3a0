//! A pickle interpreter that never executes anything.
//!
//! `torch.save` writes Python pickles. Python's own unpickler imports and calls whatever globals the
//! stream names; this one only *records* them. A handful of reconstructors that torch emits are
//! interpreted (tensors, parameters, `OrderedDict`); every other class becomes an inert
//! [`Object::Instance`] that keeps its constructor arguments and `__setstate__` state, which is
//! enough to walk a pickled `nn.Module` down to its `_parameters` and `_buffers`.
//!
//! Objects live in an arena and values refer to them by index. Containers are mutated in place
//! after they are memoised (pickle fills a dict *after* `PUT`), so a shared index keeps every alias
//! in sync; and dropping the arena is flat, so hostile nesting depth cannot overflow the stack.

use std::collections::HashMap;

/// Index of an object in [`Pickle::objects`].
pub type ObjId = usize;

/// A value on the unpickler's stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// A Python `int` that fits in 64 bits.
    Int(i64),
    /// A Python `int` wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes`/`bytearray`.
    Bytes(Vec<u8>),
    /// Any container or object, stored in the arena.
    Ref(ObjId),
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` that fits in 64 bits (or a `bool`, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
}

/// Element type of a torch storage, from its pickled class name (`torch.FloatStorage`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Maps a storage class name such as `FloatStorage` to its element type.
    pub fn from_storage_name(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }
}

/// A reference to raw storage data, from a persistent id.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// The storage key: a file name under `data/` (zip format) or a root key (legacy format).
    pub key: String,
    pub dtype: DType,
    /// Number of elements the pickle claims the storage has (checked against the real data later).
    pub numel: u64,
    /// Legacy views into a root storage start this many elements in.
    pub view_offset: u64,
}

/// A tensor's view of a storage, from `torch._utils._rebuild_tensor_v2`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    pub storage: StorageRef,
    /// Offset in elements from the start of the storage.
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// An object in the arena.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A `dict` or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// A class or function named by `GLOBAL`/`STACK_GLOBAL`; never imported.
    Global {
        module: String,
        name: String,
    },
    /// An instance of a class we do not interpret, with what it was built from.
    Instance {
        module: String,
        name: String,
        args: Vec<Value>,
        state: Option<Value>,
    },
    Storage(StorageRef),
    Tensor(TensorMeta),
    /// A tensor whose reconstructor we do not support (quantized, sparse, …): kept so that an error
    /// can name it if someone asks for it, while the rest of the file still loads.
    UnsupportedTensor {
        reconstructor: String,
    },
}

/// The opcodes, by the names Python's `pickletools` gives them (protocols 0–5).
mod op {
    pub const MARK: u8 = b'(';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const FLOAT: u8 = b'F';
    pub const BINFLOAT: u8 = b'G';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const SETITEMS: u8 = b'u';
    pub const EMPTY_DICT: u8 = b'}';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// Why a pickle could not be read. `pos` is the byte offset of the opcode concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pickle byte {pos}: {msg}")]
pub struct PickleError {
    pub pos: usize,
    pub msg: String,
}

/// The result of running one pickle: its object arena and the root value.
#[derive(Debug, Default)]
pub struct Pickle {
    pub objects: Vec<Object>,
    pub root: Option<Value>,
}

impl Pickle {
    /// The object a value refers to, if it is a reference.
    pub fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Ref(id) => self.objects.get(*id),
            _ => None,
        }
    }

    /// The value stored under string key `key` in a dict value.
    pub fn dict_get<'a>(&'a self, dict: &Value, key: &str) -> Option<&'a Value> {
        match self.object(dict)? {
            Object::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Runs one pickle starting at `data[start..]` and returns it with the offset just past `STOP`.
pub fn unpickle(data: &[u8], start: usize) -> Result<(Pickle, usize), PickleError> {
    let mut vm = Machine {
        data,
        pos: start,
        op_pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        out: Pickle::default(),
    };
    let root = vm.run()?;
    vm.out.root = Some(root);
    Ok((vm.out, vm.pos))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    out: Pickle,
}

impl Machine<'_> {
    fn fail<T>(&self, msg: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            pos: self.op_pos,
            msg: msg.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.fail(format!(
                "truncated: needs {n} more bytes, {} left",
                self.data.len() - self.pos
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `len` bytes whose length came from the stream: checked before any allocation.
    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, PickleError> {
        let len = usize::try_from(len).or_else(|_| self.fail("length does not fit in memory"))?;
        Ok(self.take(len)?.to_vec())
    }

    fn string(&mut self, len: u64) -> Result<String, PickleError> {
        let b = self.bytes(len)?;
        String::from_utf8(b).or_else(|_| self.fail("string is not valid UTF-8"))
    }

    /// A newline-terminated text argument (protocol 0 opcodes).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("truncated: missing end of line");
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.fail("stack underflow");
        }
        self.stack
            .pop()
            .map_or_else(|| self.fail("stack underflow"), Ok)
    }

    fn top(&self) -> Result<&Value, PickleError> {
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.fail("stack underflow"),
        }
    }

    /// Pops everything above the most recent MARK, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return self.fail("MARK expected");
        };
        Ok(self.stack.split_off(m))
    }

    fn alloc(&mut self, o: Object) -> Value {
        self.out.objects.push(o);
        Value::Ref(self.out.objects.len() - 1)
    }

    fn obj_mut(&mut self, v: &Value) -> Option<&mut Object> {
        match v {
            Value::Ref(id) => self.out.objects.get_mut(*id),
            _ => None,
        }
    }

    fn global_name(&self, v: &Value) -> Option<(String, String)> {
        match self.out.object(v)? {
            Object::Global { module, name } => Some((module.clone(), name.clone())),
            _ => None,
        }
    }

    fn tuple_items(&self, v: &Value) -> Option<Vec<Value>> {
        match self.out.object(v)? {
            Object::Tuple(items) | Object::List(items) => Some(items.clone()),
            _ => None,
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.fail(format!("memo key {key} was never stored")),
        }
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                op::PROTO => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.fail(format!("unsupported pickle protocol {proto}"));
                    }
                }
                op::FRAME => {
                    self.u64()?; // FRAME: a read-ahead hint only.
                }
                op::STOP => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop()?;
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                op::NONE => self.stack.push(Value::None),
                op::NEWTRUE => self.stack.push(Value::Bool(true)),
                op::NEWFALSE => self.stack.push(Value::Bool(false)),
                op::BININT => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                op::BININT2 => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                op::INT | op::LONG => {
                    let line = self.line()?;
                    let t = line.trim_end_matches('L');
                    let v = match t {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => match t.parse::<i64>() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.fail(format!("bad integer literal {line:?}")),
                        },
                    };
                    self.stack.push(v);
                }
                op::LONG1 | op::LONG4 => {
                    let n = if op == op::LONG1 {
                        self.u8()? as u64
                    } else {
                        self.u32()? as u64
                    };
                    let b = self.bytes(n)?;
                    self.stack.push(long_from_bytes(b));
                }
                op::FLOAT => {
                    let line = self.line()?;
                    match line.trim().parse::<f64>() {
                        Ok(f) => self.stack.push(Value::Float(f)),
                        Err(_) => return self.fail(format!("bad float literal {line:?}")),
                    }
                }
                op::BINFLOAT => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                op::BINUNICODE => {
                    let n = self.u32()? as u64;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                op::SHORT_BINUNICODE => {
                    let n = self.u8()? as u64;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                op::BINUNICODE8 => {
                    let n = self.u64()?;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                op::UNICODE => {
                    let s = self.line()?;
                    self.stack.push(Value::Str(s));
                }
                // Python 2 `str` objects (old checkpoints): kept as text when valid UTF-8.
                op::BINSTRING | op::SHORT_BINSTRING => {
                    let n = if op == op::BINSTRING {
                        self.u32()? as u64
                    } else {
                        self.u8()? as u64
                    };
                    let b = self.bytes(n)?;
                    self.stack.push(match String::from_utf8(b) {
                        Ok(s) => Value::Str(s),
                        Err(e) => Value::Bytes(e.into_bytes()),
                    });
                }
                op::STRING => {
                    let line = self.line()?;
                    let s = line.trim();
                    let unquoted = s
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                        .unwrap_or(s);
                    self.stack.push(Value::Str(unquoted.to_string()));
                }
                op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = match op {
                        op::BINBYTES => self.u32()? as u64,
                        op::SHORT_BINBYTES => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.bytes(n)?;
                    self.stack.push(Value::Bytes(b));
                }
                op::EMPTY_TUPLE => {
                    let v = self.alloc(Object::Tuple(Vec::new()));
                    self.stack.push(v);
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Tuple(items));
                    self.stack.push(v);
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = (op - op::TUPLE1 + 1) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.fail("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.alloc(Object::Tuple(items));
                    self.stack.push(v);
                }
                op::EMPTY_LIST => {
                    let v = self.alloc(Object::List(Vec::new()));
                    self.stack.push(v);
                }
                op::LIST => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::List(items));
                    self.stack.push(v);
                }
                op::APPEND => {
                    let item = self.pop()?;
                    let list = self.top()?.clone();
                    self.extend_list(&list, vec![item])?;
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?.clone();
                    self.extend_list(&list, items)?;
                }
                op::EMPTY_DICT => {
                    let v = self.alloc(Object::Dict(Vec::new()));
                    self.stack.push(v);
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Dict(Vec::new()));
                    self.set_items(&v, items)?;
                    self.stack.push(v);
                }
                op::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, vec![key, value])?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?.clone();
                    self.set_items(&dict, items)?;
                }
                op::EMPTY_SET => {
                    let v = self.alloc(Object::Set(Vec::new()));
                    self.stack.push(v);
                }
                op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    let set = self.top()?.clone();
                    match self.obj_mut(&set) {
                        Some(Object::Set(s)) => s.extend(items),
                        _ => return self.fail("ADDITEMS on something that is not a set"),
                    }
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Set(items));
                    self.stack.push(v);
                }
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let v = self.alloc(Object::Global { module, name });
                    self.stack.push(v);
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            let v = self.alloc(Object::Global { module, name });
                            self.stack.push(v);
                        }
                        _ => return self.fail("STACK_GLOBAL needs two strings"),
                    }
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let Some(args) = self.tuple_items(&args) else {
                        return self.fail("REDUCE arguments are not a tuple");
                    };
                    let v = self.call(&callable, args)?;
                    self.stack.push(v);
                }
                op::NEWOBJ => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let Some(args) = self.tuple_items(&args) else {
                        return self.fail("NEWOBJ arguments are not a tuple");
                    };
                    let v = self.call(&cls, args)?;
                    self.stack.push(v);
                }
                op::NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let Some(args) = self.tuple_items(&args) else {
                        return self.fail("NEWOBJ_EX arguments are not a tuple");
                    };
                    let v = self.call(&cls, args)?;
                    self.stack.push(v);
                }
                op::OBJ => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.fail("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = self.call(&cls, items)?;
                    self.stack.push(v);
                }
                op::INST => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let args = self.pop_mark()?;
                    let cls = self.alloc(Object::Global { module, name });
                    let v = self.call(&cls, args)?;
                    self.stack.push(v);
                }
                op::BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    self.build(&target, state);
                }
                op::PUT => {
                    let line = self.line()?;
                    match line.trim().parse::<u64>() {
                        Ok(k) => self.memo_put(k)?,
                        Err(_) => return self.fail(format!("bad memo key {line:?}")),
                    }
                }
                op::BINPUT => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                op::LONG_BINPUT => {
                    let k = self.u32()? as u64;
                    self.memo_put(k)?;
                }
                op::MEMOIZE => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                op::GET => {
                    let line = self.line()?;
                    match line.trim().parse::<u64>() {
                        Ok(k) => self.memo_get(k)?,
                        Err(_) => return self.fail(format!("bad memo key {line:?}")),
                    }
                }
                op::BINGET => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                op::LONG_BINGET => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?;
                }
                op::BINPERSID => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.stack.push(v);
                }
                op::PERSID => {
                    return self.fail("text persistent ids (PERSID) are not used by torch")
                }
                op::EXT1 | op::EXT2 | op::EXT4 => {
                    return self.fail("extension registry opcodes are not supported")
                }
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return self.fail("out-of-band buffers are not supported")
                }
                other => return self.fail(format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    fn extend_list(&mut self, list: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        match self.obj_mut(list) {
            Some(Object::List(l)) => {
                l.extend(items);
                Ok(())
            }
            // `list.extend` on a custom sequence type: keep the items with the instance.
            Some(Object::Instance { args, .. }) => {
                args.extend(items);
                Ok(())
            }
            _ => self.fail("APPEND on something that is not a list"),
        }
    }

    fn set_items(&mut self, dict: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.fail("SETITEMS with an odd number of values");
        }
        let Some(Object::Dict(d)) = self.obj_mut(dict) else {
            return self.fail("SETITEM on something that is not a dict");
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            // Only scalar keys can be equal in a way we can decide; objects are distinct.
            let scalar = !matches!(k, Value::Ref(_));
            match d.iter_mut().find(|(old, _)| scalar && *old == k) {
                Some(slot) => slot.1 = v,
                None => d.push((k, v)),
            }
        }
        Ok(())
    }

    /// `BUILD`: `__setstate__`. Only instances keep their state; an `OrderedDict`'s state is its
    /// `_metadata` (versions for `_load_from_state_dict`), which a reader of tensors does not need.
    fn build(&mut self, target: &Value, state: Value) {
        if let Some(Object::Instance { state: s, .. }) = self.obj_mut(target) {
            *s = Some(state);
        }
    }

    /// Interprets the storage persistent id torch writes:
    /// `('storage', StorageClass, key, location, numel[, view_metadata])`.
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, PickleError> {
        let Some(items) = self.tuple_items(pid) else {
            return self.fail("persistent id is not a tuple");
        };
        if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 5 {
            return self.fail("persistent id is not a ('storage', …) tuple");
        }
        let Some((_, class)) = self.global_name(&items[1]) else {
            return self.fail("persistent id names no storage class");
        };
        let Some(dtype) = DType::from_storage_name(&class) else {
            return self.fail(format!("unsupported storage type torch.{class}"));
        };
        let key = match &items[2] {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return self.fail("storage key is not a string"),
        };
        let Some(numel) = items[4].as_int().and_then(|n| u64::try_from(n).ok()) else {
            return self.fail("storage size is not a non-negative integer");
        };
        let mut storage = StorageRef {
            key,
            dtype,
            numel,
            view_offset: 0,
        };
        // Legacy files from torch < 1.0 could pickle views: (view_key, offset, size) into the root.
        if let Some(view) = items.get(5).filter(|v| **v != Value::None) {
            let parts = self.tuple_items(view).unwrap_or_default();
            let (Some(off), Some(size)) = (
                parts.get(1).and_then(Value::as_int),
                parts.get(2).and_then(Value::as_int),
            ) else {
                return self.fail("malformed storage view metadata");
            };
            match (u64::try_from(off), u64::try_from(size)) {
                (Ok(off), Ok(size)) => {
                    storage.view_offset = off;
                    storage.numel = size;
                }
                _ => return self.fail("negative storage view offset or size"),
            }
        }
        Ok(self.alloc(Object::Storage(storage)))
    }

    /// `REDUCE`/`NEWOBJ`: calls of the reconstructors we understand; anything else is recorded.
    fn call(&mut self, callable: &Value, args: Vec<Value>) -> Result<Value, PickleError> {
        let Some((module, name)) = self.global_name(callable) else {
            // Calling the result of another call: record it, never evaluate.
            return Ok(self.alloc(Object::Instance {
                module: String::new(),
                name: "<call>".into(),
                args,
                state: None,
            }));
        };
        match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => self.rebuild_tensor(args),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match args.into_iter().next() {
                    Some(data) => Ok(data),
                    None => self.fail("_rebuild_parameter without data"),
                }
            }
            // Tensor subclasses: (func, new_type, func_args, state) -> func(*func_args).
            ("torch._tensor", "_rebuild_from_type_v2") => {
                let func = args.first().cloned().unwrap_or(Value::None);
                let Some(inner) = args.get(2).and_then(|a| self.tuple_items(a)) else {
                    return self.fail("_rebuild_from_type_v2 without arguments");
                };
                self.call(&func, inner)
            }
            ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
                let dict = self.alloc(Object::Dict(Vec::new()));
                if let Some(pairs) = args.first().and_then(|a| self.tuple_items(a)) {
                    let mut flat = Vec::with_capacity(pairs.len() * 2);
                    for p in pairs {
                        match self.tuple_items(&p) {
                            Some(kv) if kv.len() == 2 => flat.extend(kv),
                            _ => return self.fail("OrderedDict items are not (key, value) pairs"),
                        }
                    }
                    self.set_items(&dict, flat)?;
                }
                Ok(dict)
            }
            ("torch", "Size") => {
                let items = args
                    .first()
                    .and_then(|a| self.tuple_items(a))
                    .unwrap_or_default();
                Ok(self.alloc(Object::Tuple(items)))
            }
            ("builtins" | "__builtin__", "set" | "frozenset") => {
                let items = args
                    .first()
                    .and_then(|a| self.tuple_items(a))
                    .unwrap_or_default();
                Ok(self.alloc(Object::Set(items)))
            }
            // `copyreg._reconstructor(cls, base, state)` is how protocol 0/1 rebuild objects.
            ("copyreg" | "copy_reg", "_reconstructor") => {
                let cls = args.first().cloned().unwrap_or(Value::None);
                match self.global_name(&cls) {
                    Some((module, name)) => Ok(self.alloc(Object::Instance {
                        module,
                        name,
                        args: Vec::new(),
                        state: None,
                    })),
                    None => self.fail("_reconstructor without a class"),
                }
            }
            ("torch._utils", n) if n.starts_with("_rebuild_") => {
                Ok(self.alloc(Object::UnsupportedTensor {
                    reconstructor: format!("torch._utils.{n}"),
                }))
            }
            _ => Ok(self.alloc(Object::Instance {
                module,
                name,
                args,
                state: None,
            })),
        }
    }

    fn rebuild_tensor(&mut self, args: Vec<Value>) -> Result<Value, PickleError> {
        if args.len() < 4 {
            return self.fail("_rebuild_tensor_v2 needs (storage, offset, size, stride, …)");
        }
        let storage = match self.out.object(&args[0]) {
            Some(Object::Storage(s)) => s.clone(),
            _ => return self.fail("_rebuild_tensor_v2: first argument is not a storage"),
        };
        let Some(offset) = args[1].as_int() else {
            return self.fail("_rebuild_tensor_v2: storage offset is not an integer");
        };
        let ints = |v: &Value| -> Option<Vec<i64>> {
            self.tuple_items(v)?.iter().map(Value::as_int).collect()
        };
        let (Some(size), Some(stride)) = (ints(&args[2]), ints(&args[3])) else {
            return self.fail("_rebuild_tensor_v2: size or stride is not a tuple of integers");
        };
        if size.len() != stride.len() {
            return self.fail(format!(
                "_rebuild_tensor_v2: size has {} dimensions but stride has {}",
                size.len(),
                stride.len()
            ));
        }
        Ok(self.alloc(Object::Tensor(TensorMeta {
            storage,
            offset,
            size,
            stride,
        })))
    }
}

/// Decodes a LONG1/LONG4 payload (little-endian two's complement).
fn long_from_bytes(b: Vec<u8>) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut a = if negative { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(&b);
        Value::Int(i64::from_le_bytes(a))
    } else {
        Value::BigInt(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol2_dict_of_ints_and_strings() {
        // pickle.dumps({'a': 1, 'b': 'x', 'c': [1.5, None, True]}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02X\x01\x00\x00\x00xq\x03X\x01\x00\x00\x00cq\x04]q\x05(G?\xf8\x00\x00\x00\x00\x00\x00N\x88eu.";
        let (p, end) = unpickle(data, 0).unwrap();
        assert_eq!(end, data.len());
        let root = p.root.clone().unwrap();
        assert_eq!(p.dict_get(&root, "a"), Some(&Value::Int(1)));
        assert_eq!(p.dict_get(&root, "b"), Some(&Value::Str("x".into())));
        let c = p.dict_get(&root, "c").unwrap();
        assert_eq!(
            p.object(c),
            Some(&Object::List(vec![
                Value::Float(1.5),
                Value::None,
                Value::Bool(true)
            ]))
        );
    }

    #[test]
    fn memoised_dict_sees_later_items() {
        // d = {}; pickle.dumps([d, d]) after filling d: the second element is a memo GET.
        // Hand-built: EMPTY_LIST, EMPTY_DICT, BINPUT 0, 'k' 1 SETITEM, APPEND, BINGET 0, APPEND, STOP
        let data = b"\x80\x02]}q\x00X\x01\x00\x00\x00kK\x01sah\x00a.";
        let (p, _) = unpickle(data, 0).unwrap();
        let root = p.root.clone().unwrap();
        let Some(Object::List(items)) = p.object(&root) else {
            panic!("not a list")
        };
        assert_eq!(items[0], items[1]);
        assert_eq!(p.dict_get(&items[1], "k"), Some(&Value::Int(1)));
    }

    #[test]
    fn long1_magic_number_of_legacy_files() {
        // The legacy torch magic number 0x1950a86a20f9469cfc6c as LONG1 (10 bytes).
        let data = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        let (p, _) = unpickle(data, 0).unwrap();
        assert_eq!(
            p.root,
            Some(Value::BigInt(vec![
                0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19
            ]))
        );
        let (p, _) = unpickle(b"\x8a\x02\x18\xfc.", 0).unwrap();
        assert_eq!(p.root, Some(Value::Int(-1000)));
    }

    #[test]
    fn errors_name_the_byte_and_never_panic_on_garbage() {
        let err = unpickle(b"\x80\x02X\xff\xff\xff\x7f", 0).unwrap_err();
        assert!(err.msg.contains("truncated"), "{err}");
        assert_eq!(err.pos, 2);
        assert!(unpickle(b"\x80\x02\xff", 0)
            .unwrap_err()
            .msg
            .contains("unknown opcode 0xff"));
        assert!(unpickle(b"s.", 0).is_err());
        assert!(unpickle(b"h\x05.", 0).unwrap_err().msg.contains("memo"));
    }

    #[test]
    fn globals_are_recorded_not_called() {
        // pickle.dumps(os.system, protocol=2) -> GLOBAL 'posix system'; calling it via REDUCE
        // just records an inert instance.
        let data = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let (p, _) = unpickle(data, 0).unwrap();
        match p.object(p.root.as_ref().unwrap()) {
            Some(Object::Instance {
                module, name, args, ..
            }) => {
                assert_eq!((module.as_str(), name.as_str()), ("posix", "system"));
                assert_eq!(args, &vec![Value::Str("ls".into())]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
