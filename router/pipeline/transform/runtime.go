package transform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// runtime is one goja runtime with the program run in it. It belongs to
// one call at a time: taken from the Program's pool, put back only when
// the call neither was interrupted nor panicked.
type runtime struct {
	vm                           *goja.Runtime
	transform, transformResponse goja.Callable
	// The builtins this package uses, taken before the script ran, so
	// that a script replacing JSON.stringify changes nothing here.
	stringify, freeze goja.Callable
	objProto          *goja.Object // Object.prototype, for decode

	// timer interrupts vm when a call runs too long. Its Stop after the
	// call tells whether it fired; if it did, the runtime is dropped,
	// so an interrupt can never reach a later call.
	timer *time.Timer

	// The frozen context object of the last call, reused while the
	// context is the same.
	ctxKey Context
	ctxVal goja.Value

	// Console state of the current call.
	log  func(Context, string, string)
	cur  Context
	logs int
}

// timeoutMark is the value the timer interrupts with.
type timeoutMark struct{}

// newRuntime makes a runtime and runs the program in it, bounded by the
// timeout.
func (p *Program) newRuntime() (rt *runtime, err error) {
	rt = &runtime{vm: goja.New(), log: p.log}
	vm := rt.vm
	vm.SetMaxCallStackSize(MaxCallDepth)
	rt.timer = time.AfterFunc(p.timeout, func() { vm.Interrupt(timeoutMark{}) })
	broken := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				broken = true
				err = p.classify(rt, r)
			}
		}()
		jsonObj := vm.Get("JSON").ToObject(vm)
		rt.stringify, _ = goja.AssertFunction(jsonObj.Get("stringify"))
		rt.freeze, _ = goja.AssertFunction(vm.Get("Object").ToObject(vm).Get("freeze"))
		rt.objProto = objectPrototype(vm)
		rt.installConsole()
		if _, err = vm.RunProgram(p.prog); err != nil {
			err = p.classify(rt, err)
			return
		}
		var okT, okR bool
		rt.transform, okT, err = p.lookup(vm, "transform")
		if err != nil {
			return
		}
		rt.transformResponse, okR, err = p.lookup(vm, "transformResponse")
		if err != nil {
			return
		}
		if !okT && !okR {
			err = &ScriptError{Err: ErrNoFunction, Message: "define function transform(event, context) or function transformResponse(response, context)"}
		}
	}()
	if !rt.timer.Stop() {
		broken = true
		if err == nil {
			err = &ScriptError{Err: ErrTimeout, Message: fmt.Sprintf("the script's top level ran longer than %v", p.timeout)}
		}
	}
	if err != nil || broken {
		return nil, err
	}
	return rt, nil
}

// lookup reads the global name: a function, or nothing.
func (p *Program) lookup(vm *goja.Runtime, name string) (goja.Callable, bool, error) {
	v := vm.Get(name)
	if v == nil || goja.IsUndefined(v) {
		return nil, false, nil
	}
	if fn, ok := goja.AssertFunction(v); ok {
		return fn, true, nil
	}
	return nil, false, &ScriptError{Err: ErrNoFunction, Message: name + " is defined but is not a function"}
}

// get takes a runtime from the pool, or makes one.
func (p *Program) get() (*runtime, error) {
	if v := p.pool.Get(); v != nil {
		return v.(*runtime), nil
	}
	return p.newRuntime()
}

// call runs transform (resp false) or transformResponse (resp true) with
// the JSON text in (which it does not keep), and returns the JSON text of the result, or null true
// when the script returned null or undefined.
func (p *Program) call(ctx context.Context, resp bool, in []byte, c Context) (out []byte, null bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, &ScriptError{Err: err}
	}
	rt, err := p.get()
	if err != nil {
		return nil, false, err
	}
	rt.timer.Reset(p.timeout)
	var stop func() bool
	if ctx.Done() != nil {
		vm := rt.vm
		stop = context.AfterFunc(ctx, func() { vm.Interrupt(ctx.Err()) })
	}
	out, null, err, broken := p.exec(rt, resp, in, c)
	if !rt.timer.Stop() {
		broken = true // the timer fired: the interrupt may still be pending
	}
	if stop != nil && !stop() {
		broken = true // so did the context
	}
	if !broken {
		p.pool.Put(rt)
	}
	return out, null, err
}

// exec is the part of a call that touches the runtime: parse the input,
// call the function, serialize the result. It runs with the timer armed,
// including the formatting of what the script threw (a thrown object's
// toString is script code). broken reports a runtime that must not be
// reused: interrupted, overflowed or panicked.
func (p *Program) exec(rt *runtime, resp bool, in []byte, c Context) (out []byte, null bool, err error, broken bool) {
	defer func() {
		if r := recover(); r != nil {
			out, null, broken = nil, false, true
			err = p.classify(rt, r)
		}
	}()
	vm := rt.vm
	rt.cur, rt.logs = c, 0
	fn := rt.transform
	if resp {
		fn = rt.transformResponse
	}
	arg, err := decodeIn(vm, rt.objProto, in)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInput, err), false
	}
	res, err := fn(goja.Undefined(), arg, rt.context(c))
	if err != nil {
		return nil, false, p.classify(rt, err), uncatchable(err)
	}
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return nil, true, nil, false
	}
	obj, ok := res.(*goja.Object)
	if !ok || obj.ClassName() == "Function" {
		return nil, false, &ScriptError{Err: ErrResult, Message: fmt.Sprintf("returned %s; return an object, or null to drop the event", kindOf(res))}, false
	}
	if obj.ClassName() == "Array" {
		return nil, false, &ScriptError{Err: ErrResult, Message: "returned an array; return an object, or null to drop the event"}, false
	}
	enc := encoder{vm: vm, buf: make([]byte, 0, len(in)+len(in)/8+64), max: p.maxOutput}
	if ok, _ := enc.value(obj, 0, false); ok {
		out = enc.buf
	} else {
		js, err := rt.stringify(goja.Undefined(), obj)
		if err != nil {
			return nil, false, p.classify(rt, err), uncatchable(err)
		}
		str, ok := js.(goja.String)
		if !ok {
			return nil, false, &ScriptError{Err: ErrResult, Message: "the result has no JSON form"}, false
		}
		// Each UTF-16 unit is at least one byte of UTF-8: refuse before
		// converting what is too long already.
		if str.Length() > p.maxOutput {
			return nil, false, &ScriptError{Err: ErrOutputTooLarge, Message: fmt.Sprintf("the result is over %d bytes", p.maxOutput)}, false
		}
		out = []byte(str.String())
	}
	if len(out) > p.maxOutput {
		return nil, false, &ScriptError{Err: ErrOutputTooLarge, Message: fmt.Sprintf("the result is %d bytes, over %d", len(out), p.maxOutput)}, false
	}
	if len(out) == 0 || out[0] != '{' {
		return nil, false, &ScriptError{Err: ErrResult, Message: "the result's JSON is not an object"}, false
	}
	return out, false, nil, false
}

// context returns the frozen context object for c.
func (rt *runtime) context(c Context) goja.Value {
	if rt.ctxVal != nil && rt.ctxKey == c {
		return rt.ctxVal
	}
	o := rt.vm.NewObject()
	_ = o.Set("space", c.Space)
	_ = o.Set("subscriptionId", c.SubscriptionID)
	_ = o.Set("functionId", c.FunctionID)
	_ = o.Set("attempt", c.Attempt)
	if _, err := rt.freeze(goja.Undefined(), o); err != nil {
		panic(err)
	}
	rt.ctxKey, rt.ctxVal = c, o
	return o
}

// kindOf names a value's type for an error message, without running
// script code.
func kindOf(v goja.Value) string {
	switch v.ExportType().Kind().String() {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int64", "float64":
		return "a number"
	}
	if _, ok := v.(*goja.Object); ok {
		return "a function"
	}
	if v.ExportType().String() == "*big.Int" {
		return "a bigint"
	}
	return "a " + v.ExportType().String()
}

// uncatchable tells an error after which the runtime is not reused.
func uncatchable(err error) bool {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	return errors.As(err, &ie) || errors.As(err, &so)
}

// classify turns what a call returned or panicked with into a
// *ScriptError. It runs with the timer armed.
func (p *Program) classify(rt *runtime, r any) error {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	err, _ := r.(error)
	switch {
	case err == nil:
		return &ScriptError{Err: ErrInternal, Message: fmt.Sprint(r)}
	case errors.As(err, &ie):
		se := &ScriptError{}
		switch v := ie.Value().(type) {
		case timeoutMark:
			se.Err, se.Message = ErrTimeout, fmt.Sprintf("the script ran longer than %v", p.timeout)
		case error:
			se.Err = v
		default:
			se.Err = ErrInternal
		}
		se.Line, se.Column = position(ie.Stack())
		return se
	case errors.As(err, &so):
		se := &ScriptError{Err: ErrThrown, Message: "RangeError: Maximum call stack size exceeded"}
		se.Line, se.Column = position(so.Stack())
		return se
	case errors.As(err, &ex):
		se := &ScriptError{Err: ErrThrown, Message: rt.describe(ex.Value())}
		se.Line, se.Column = position(ex.Stack())
		return se
	case errors.Is(err, ErrTimeout), errors.As(err, new(*ScriptError)):
		return err
	}
	return &ScriptError{Err: ErrInternal, Message: err.Error()}
}

// describe is String(v) as the script would see it, or a fixed text when
// that throws. An interrupt while it runs propagates.
func (rt *runtime) describe(v goja.Value) string {
	if v == nil {
		return "undefined"
	}
	if _, ok := v.(*goja.Object); !ok {
		return v.String()
	}
	var s string
	if ex := rt.vm.Try(func() { s = v.String() }); ex != nil {
		return "uncaught exception (its toString threw)"
	}
	return s
}

// position is the line and column of the innermost frame of the script.
func position(stack []goja.StackFrame) (line, col int) {
	for i := range stack {
		if pos := stack[i].Position(); pos.Line > 0 {
			return pos.Line, pos.Column
		}
	}
	return 0, 0
}

// installConsole defines console.log, info, warn, error and debug,
// passing messages to Options.Log (or nowhere).
func (rt *runtime) installConsole() {
	console := rt.vm.NewObject()
	for _, level := range []string{"log", "info", "warn", "error", "debug"} {
		level := level
		_ = console.Set(level, func(call goja.FunctionCall) goja.Value {
			rt.console(level, call.Arguments)
			return goja.Undefined()
		})
	}
	_ = rt.vm.Set("console", console)
}

// console formats one message: strings as they are, objects as JSON,
// other values as String gives them, separated by spaces.
func (rt *runtime) console(level string, args []goja.Value) {
	if rt.log == nil || rt.logs >= MaxLogMessages {
		return
	}
	rt.logs++
	var b strings.Builder
	for i, a := range args {
		if b.Len() >= MaxLogMessage {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		if _, ok := a.(*goja.Object); ok {
			js, err := rt.stringify(goja.Undefined(), a)
			if err != nil {
				if uncatchable(err) {
					panic(err) // the interrupt must reach the caller
				}
				b.WriteString("[unserializable]")
				continue
			}
			if goja.IsUndefined(js) {
				b.WriteString("undefined")
				continue
			}
			a = js
		}
		b.WriteString(a.String())
	}
	msg := b.String()
	if len(msg) > MaxLogMessage {
		cut := MaxLogMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	rt.log(rt.cur, level, msg)
}
