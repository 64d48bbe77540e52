package transform

import "github.com/dop251/goja"

type goja_Value = goja.Value
