from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
FIELDPATH_ALL_FIELD_NUMBER: _ClassVar[int]
fieldpath_all: _descriptor.FieldDescriptor
FIELDPATH_FIELD_NUMBER: _ClassVar[int]
fieldpath: _descriptor.FieldDescriptor
