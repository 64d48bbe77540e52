'use strict';

// hello answers GET /hello with a JSON body. The emulator parses a body
// whose Content-Type is application/json, so the gateway receives it as an
// object.
module.exports.hello = (event, context, callback) => {
  callback(null, {
    statusCode: 200,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ message: 'Hello from the emulator', path: event.data.path }),
  });
};

// welcome is subscribed to user.created.
module.exports.welcome = (event, context, callback) => {
  callback(null, { welcomed: event.data.name });
};
