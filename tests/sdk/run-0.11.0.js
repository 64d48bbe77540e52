'use strict'

// Every call of @serverless/event-gateway-sdk 0.11.0 (npm alias sdk0110)
// except createConnection, updateConnection, deleteConnection and
// listConnections, which talk to the separate connector service:
// emit(event, {path, headers}). See gen09.js.
require('./gen09')({ SDK: require('sdk0110'), emitOptions: true })
  .catch(e => { console.log(`FAIL driver: ${e.stack}`); console.log('0 passed, 1 failed'); process.exitCode = 1 })
