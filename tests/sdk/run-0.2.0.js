'use strict'

// Every call of @serverless/event-gateway-sdk 0.2.0 (npm alias sdk020):
// API key option "apikey", invoke without a Space header. See gen06.js.
require('./gen06')({ SDK: require('sdk020'), keyOption: 'apikey', invokeSendsSpace: false })
  .catch(e => { console.log(`FAIL driver: ${e.stack}`); console.log('0 passed, 1 failed'); process.exitCode = 1 })
