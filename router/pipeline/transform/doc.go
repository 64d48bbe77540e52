// Package transform runs a subscription's transformation: JavaScript on
// goja (github.com/dop251/goja), compiled once per configuration version,
// run in pooled runtimes, each call bounded in time.
//
// # The script contract
//
// The source (at most MaxSourceSize bytes, ECMAScript 5.1 with most of
// ES2015+ as goja implements it; sloppy mode unless it says "use strict")
// defines at least one of
//
//	function transform(event, context) { … }
//	function transformResponse(response, context) { … }
//
// as global functions (a var, let or const holding a function counts).
// Compile runs the top level once in a fresh runtime to check this.
//
// transform gets the event as the subscriber would receive it (the
// envelope, parsed from JSON into plain objects, arrays, strings, numbers,
// booleans and null) and returns the event to deliver:
//
//   - an object: delivered, serialized by JSON.stringify (so toJSON is
//     honoured, functions and undefined members are left out, and a
//     cyclic or BigInt value is an error);
//   - null or undefined (including no return statement): the event is
//     dropped for this subscription;
//   - anything else (a number, a string, a boolean, an array, a function)
//     is refused with ErrResult: the gateway delivers envelopes, which are
//     objects; wrap a value to deliver it ({data: 42}).
//
// The event object is the script's own: it may change it and return it.
//
// transformResponse, for synchronous subscriptions, gets the function's
// response object {statusCode, headers, body} (statusCode a number,
// headers an object of strings, body a string) and returns the response
// object to send, which is read by the same rules as a function's
// response (statusCode 200-599, 200 if missing; body a string, or any
// other JSON value sent as JSON). Returning null or undefined is an error
// (ErrResult), not "unchanged": return the response you were given.
//
// context is a frozen object {space, subscriptionId, functionId, attempt}
// (attempt counts from 1 for asynchronous deliveries; whatever the caller
// passes). Writes to it are ignored (sloppy mode) or throw (strict mode).
//
// A thrown value fails the call with ErrThrown, the thrown value's text
// (e.g. "TypeError: …") and the script's line and column where the error
// was made. Syntax errors fail Compile with ErrSyntax and the position.
//
// # Sandbox
//
// A runtime is a bare goja runtime: the ECMAScript builtins (JSON, Math,
// Date, RegExp, Map, Promise, …) and nothing else. There is no require,
// no module loader, no fetch, XMLHttpRequest or other network access, no
// file system, no process, no setTimeout or setInterval (a Promise's jobs
// run before the call returns). Using any of them is a ReferenceError.
// eval and Function exist and compile JavaScript only, under the same
// bounds. No Go object is handed to a script: the event, the response and
// the context are plain JavaScript values built for each call.
//
// console.log, info, warn, error and debug exist so that scripts written
// with them run; their messages go to Options.Log with the call's Context
// (at most MaxLogMessages per call, each cut to MaxLogMessage bytes;
// objects are written as JSON), or nowhere when Log is nil.
//
// Math.random and Date are the real ones: a script that uses them is not
// deterministic, which is its author's choice.
//
// # Bounds
//
// Each call (parsing the input, the script, serializing the result) is
// bounded by Options.Timeout (DefaultTimeout, 100 ms): a timer and the
// caller's context interrupt the runtime (goja's Runtime.Interrupt), and
// the call fails with ErrTimeout, or the context's error. The timeout is
// wall-clock time, so a call that waits for a CPU spends it too. goja checks for
// an interrupt between JavaScript instructions only: one long builtin
// call (JSON.parse of a huge string, "x".repeat(1e8), a big array sort)
// runs to its end first, so a call may outlast the timeout by the length
// of its longest builtin call. The script's top level, run when a runtime
// is made, has the same bound.
//
// goja has no heap limit: memory is bounded only indirectly, by the time
// limit (a script allocates what it can in Timeout), by MaxCallDepth (deep
// recursion is an uncatchable error, not a growing stack), and by
// Options.MaxOutput (DefaultMaxOutput, 6 MiB), which refuses a bigger
// result with ErrOutputTooLarge (after JSON.stringify made it: the limit
// bounds what is delivered, not what the script allocated). The router's
// bounds on events in flight are what bound the number of runtimes busy
// at once.
//
// # Runtimes and state
//
// goja runtimes are not safe for concurrent use: each call takes a
// runtime of the Program's pool (a sync.Pool, so idle runtimes are freed
// by the garbage collector) for itself and puts it back when it is done.
// A runtime that was interrupted, overflowed its stack or panicked is
// dropped, never reused; a new one is made (the top level runs again) for
// a later call.
//
// Globals persist between the calls that one runtime serves: a script
// that writes a global or changes a builtin's prototype sees the change
// in some later calls and not in others, since which runtime serves a
// call, and how long a runtime lives, are unspecified. Scripts must not
// rely on state between calls (like the container reuse of a cloud
// function: at most a cache that is correct when empty). Resetting every
// global would cost a runtime per call. The strings of an event of up to
// 4 KiB share its text: a script that keeps one of them keeps that text
// alive (4 KiB at most per kept string; larger events get a copy per
// string).
//
// A Go panic inside goja is recovered and returned as ErrInternal; no
// panic leaves this package.
package transform
