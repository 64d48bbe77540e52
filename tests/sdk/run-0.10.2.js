'use strict'

// Every call of @serverless/event-gateway-sdk 0.10.2 (npm alias sdk0102):
// emit(event) only. See gen09.js.
require('./gen09')({ SDK: require('sdk0102'), emitOptions: false })
  .catch(e => { console.log(`FAIL driver: ${e.stack}`); console.log('0 passed, 1 failed'); process.exitCode = 1 })
