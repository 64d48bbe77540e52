'use strict'

// Every call of @serverless/event-gateway-sdk 0.3.0 (npm alias sdk030):
// API key option "apiKey", invoke sends the client's space in a Space
// header. See gen06.js.
require('./gen06')({ SDK: require('sdk030'), keyOption: 'apiKey', invokeSendsSpace: true })
  .catch(e => { console.log(`FAIL driver: ${e.stack}`); console.log('0 passed, 1 failed'); process.exitCode = 1 })
