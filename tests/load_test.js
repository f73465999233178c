// Artillery processor for tests/load_test.yml: a fresh, realistic transaction per request.
"use strict";

const crypto = require("crypto");

const COUNTRIES = ["FR", "FR", "FR", "DE", "GB", "ES", "IT", "NL"];
const CHANNELS = ["pos", "pos", "online", "online", "recurring"];

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function amount() {
  // log-normal around 45, like the generator's amounts (Box-Muller)
  const z = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return Math.exp(3.8 + 0.8 * z).toFixed(2);
}

function transactionBody(requestParams, context, events, next) {
  requestParams.json = {
    transaction_id: `art-${crypto.randomUUID()}`,
    customer_id: `C${String(Math.floor(Math.random() * 2000)).padStart(6, "0")}`,
    merchant_id: `M${String(Math.floor(Math.random() * 300)).padStart(5, "0")}`,
    amount: amount(),
    currency: "EUR",
    country: pick(COUNTRIES),
    channel: pick(CHANNELS),
    timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  return next();
}

module.exports = { transactionBody };
