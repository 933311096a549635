#!/usr/bin/env python3
# Writes the seed corpora fuzz/corpus/<target>/seed-* from the repository's real inputs: the
# demo feed's rows, streams.toml and the bus tests' broken topologies, the accounts, profiles
# and inference configurations of the crates' tests, and the Binance and LLM answers in the
# shapes their parsers' tests use (bus envelopes are encoded here as the bus encodes them:
# MessagePack maps, rmp_serde's `to_vec_named`). Usage: python3 fuzz/make_seeds.py [REPO_ROOT]
import struct, os, json, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
C = os.path.join(root, 'fuzz/corpus')

def mp(v):
    if v is None: return b'\xc0'
    if v is True: return b'\xc3'
    if v is False: return b'\xc2'
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if -32 <= v < 0: return struct.pack('b', v)
        if 0 <= v < 2**16: return b'\xcd' + struct.pack('>H', v)
        if 0 <= v < 2**32: return b'\xce' + struct.pack('>I', v)
        return b'\xd3' + struct.pack('>q', v)
    if isinstance(v, float): return b'\xcb' + struct.pack('>d', v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32: return bytes([0xa0 | len(b)]) + b
        if len(b) < 256: return b'\xd9' + bytes([len(b)]) + b
        return b'\xda' + struct.pack('>H', len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        if len(v) < 256: return b'\xc4' + bytes([len(v)]) + bytes(v)
        return b'\xc5' + struct.pack('>H', len(v)) + bytes(v)
    if isinstance(v, list):
        assert len(v) < 16
        return bytes([0x90 | len(v)]) + b''.join(mp(x) for x in v)
    if isinstance(v, dict):
        assert len(v) < 16
        return bytes([0x80 | len(v)]) + b''.join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)

def env(kind, v, id, key, payload, causation=None):
    return mp({'ev': 1, 'type': kind, 'v': v, 'id': id, 'key': key, 'causation': causation,
               'producer': 'ingest', 'produced_at': 1498906800123, 'payload': payload})

def write(target, name, data):
    d = os.path.join(C, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, 'seed-' + name), 'wb').write(data)

rows = open(os.path.join(root, 'demo/btcusd_1h.csv')).read().splitlines()
candle = {'source': 'csv', 'symbol': 'BTCUSD', 'interval': '1h',
          'bar': {'t': 1498906800000, 'o': 2505.56, 'h': 2513.38, 'l': 2495.12, 'c': 2509.17, 'v': 114.6},
          'aggregated': False}
candle_env = env('candle', 1, 'csv:BTCUSD:1h:1498906800000', 'BTCUSD', mp(candle))
req = {'id': 'req:paper-technical:c1', 'client_id': 'c1', 'account': 'paper-technical', 'symbol': 'BTCUSD',
       'side': 'buy', 'size': {'by': 'notional', 'notional': 500.0}, 'order_type': 'limit', 'limit_price': 2500.0,
       'leverage': 2.0, 'stop_loss': 2400.0, 'take_profit': 2700.0, 'reduce_only': False,
       'requested_by': 'alice', 'requested_at': 1498906800123}
req_env = env('order_request', 1, 'req:paper-technical:c1', 'technical', mp(req))
write('bus_envelope', 'candle', candle_env)
write('bus_envelope', 'order-request', req_env)
write('bus_envelope', 'future-layout', mp({'ev': 2, 'parts': [1, 2]}))
write('bus_envelope', 'unknown-kind', env('tick', 3, 't:1', 'k', mp({'seq': 7}), causation='c:0'))
def pack(*es):
    return b'\x01' + b''.join(struct.pack('<I', len(e)) + e for e in es)
write('bus_pack', 'one', pack(candle_env))
write('bus_pack', 'two', pack(candle_env, req_env))
write('bus_pack', 'truncated', pack(candle_env)[:-3])

write('candle_csv', 'demo-head', '\n'.join(rows[:6]) + '\n')
write('candle_csv', 'reordered-crlf', 'volume,close,low,high,open,timestamp,extra\r\n114.6,2509.17,2495.12,2513.38,2505.56,1498906800000,x\r\n\r\n')
write('candle_csv', 'bad-row', rows[0] + '\n' + rows[1] + '\n1498910400000,abc,1,1,1,1\n')

# Binance: documented shapes (the ingest and exec crates' tests use the same).
rest = [[1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
         1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0"]]
write('binance_kline', 'rest', json.dumps(rest))
ws = {"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": 1672515782136, "s": "BTCUSDT",
      "k": {"t": 1672515780000, "T": 1672515839999, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200,
            "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100,
            "x": True, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}}
write('binance_kline', 'ws-closed', json.dumps(ws))
ws['data']['k']['x'] = False
write('binance_kline', 'ws-open', json.dumps(ws))
write('binance_kline', 'ws-reply', '{"result":null,"id":1}')

order = {"clientOrderId": "x-1", "cumQty": "0", "cumQuote": "0", "executedQty": "0.001", "orderId": 22542179,
         "avgPrice": "42000.10", "origQty": "0.001", "price": "0", "reduceOnly": False, "side": "BUY",
         "positionSide": "BOTH", "status": "FILLED", "stopPrice": "0", "closePosition": False,
         "symbol": "BTCUSDT", "timeInForce": "GTC", "type": "MARKET", "origType": "MARKET", "updateTime": 1566818724722}
write('binance_futures', 'order', json.dumps(order))
algo = {"algoId": 2146760, "clientAlgoId": "6B2I9XVcJpCjqPAJ4YoFX7", "algoType": "CONDITIONAL",
        "orderType": "TAKE_PROFIT", "symbol": "BNBUSDT", "side": "SELL", "positionSide": "BOTH",
        "timeInForce": "GTC", "quantity": "0.01", "algoStatus": "NEW", "actualOrderId": "",
        "triggerPrice": "750.000", "price": "750.000", "reduceOnly": True, "createTime": 1750485492076,
        "updateTime": 1750485492076}
write('binance_futures', 'algo-order', json.dumps(algo))
write('binance_futures', 'position-risk', json.dumps([
    {"symbol": "BTCUSDT", "positionAmt": "-0.010", "entryPrice": "42000.0", "markPrice": "41950.5",
     "unRealizedProfit": "0.49", "liquidationPrice": "0", "leverage": "3", "marginType": "cross",
     "positionSide": "BOTH", "updateTime": 1}]))
write('binance_futures', 'error', '{"code":-2019,"msg":"Margin is insufficient."}')

# Edge bodies.
write('edge_bodies', 'order', json.dumps({"account": "paper-technical", "symbol": "BTCUSDT", "side": "buy",
      "notional": 500, "order_type": "limit", "limit_price": 41000, "stop_loss": 40000, "take_profit": 45000,
      "client_id": "manual-1"}))
write('edge_bodies', 'order-fraction', json.dumps({"account": "a", "symbol": "BTCUSDT", "side": "sell", "fraction": 0.5, "reduce_only": True}))

import re
def blocks(path, marker):
    s = open(os.path.join(root, path)).read()
    return [m.group(1) for m in re.finditer(r'r#"(.*?)"#', s, re.S) if marker in m.group(1)]

# streams.toml: the shipped one and the bus tests' broken ones.
write('streams_toml', 'streams', open(os.path.join(root, 'streams.toml')).read())
for n in ['many_problems', 'wrong_types', 'zero_partitions']:
    write('streams_toml', n, open(os.path.join(root, 'crates/bus/tests/topologies', n + '.toml')).read())

# accounts_profiles: profiles NUL accounts.
profiles = blocks('crates/ensemble/src/profile.rs', '[[profile]]')
accounts = blocks('crates/risk/src/account.rs', '[[account]]')
bt = blocks('crates/backtest/tests/hyperopt.rs', '[[')
write('accounts_profiles', 'default', profiles[0] + '\0' + '[[account]]\nid = "paper-technical"\nprofile = "technical"\nstarting_balance = 10000.0\n')
write('accounts_profiles', 'problems', profiles[1] + '\0' + accounts[0])
write('accounts_profiles', 'hyperliquid', '\0' + accounts[1])
write('accounts_profiles', 'backtest', bt[0] + '\0' + bt[1])

llm = blocks('crates/inference/src/llm/config.rs', '[[analyst]]')
write('inference_config', 'analysts', llm[0])
write('inference_config', 'problems', llm[1])
write('inference_config', 'rules', '[rules]\nrsi_oversold = 25.0\nrsi_overbought = 75.0\nsma_cross = { fast = 5, slow = 30 }\n[condition]\nwindow = 30\nadx_trend = 25.0\n')

# LLM answers.
write('llm_answer', 'error', '{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}')

ans = {"action": "long", "confidence": 0.72, "reasoning": "RSI oversold, MACD turning up", "stop_loss": 41000.0, "take_profit": 44000.0}
write('llm_answer', 'openai', json.dumps({"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(ans)}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 812, "completion_tokens": 64}}))
write('llm_answer', 'anthropic', json.dumps({"id": "m1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": json.dumps(ans)}], "usage": {"input_tokens": 800, "output_tokens": 60}}))
write('llm_answer', 'answer', json.dumps(ans))
charts = {"charts": [
    {"symbol": "ETHUSDT", "interval": "4h", "action": "short", "confidence": 0.4, "reasoning": "weak", "stop_loss": 2600, "take_profit": 2300},
    {"symbol": "BTCUSDT", "interval": "1h", "action": "long", "confidence": 0.7, "reasoning": "strong", "stop_loss": 41000, "take_profit": 45000}],
    "overall": {"action": "hold", "confidence": 0.3, "summary": "mixed", "answer": "BTC"}}
write('llm_answer', 'charts-fenced', "```json\n" + json.dumps(charts) + "\n```")

# Edge bodies: an account as the account routes take it.
write('edge_bodies', 'account', json.dumps({"id": "swing", "name": "Swing", "profile": "technical", "starting_balance": 5000.0,
      "leverage": 2.0, "allow_short": True, "trailing_stop_pct": 0.02,
      "sizing": {"method": "fixed_risk", "risk": 0.01}, "risk": {"max_open_positions": 3, "daily_loss_limit": 0.05, "max_drawdown": 0.2}}))
write('edge_bodies', 'account-problems', json.dumps({"id": "a b", "profile": "nope", "starting_balance": -1.0, "leverage": 200.0,
      "sizing": {"method": "kelly", "cap": 2.0, "payoff": 0.0}}))

# Task parameters (the four kinds read the same body).
write('edge_task_params', 'backtest-preset', json.dumps({"strategy": "sma_cross", "params": ["fast=5", "slow=30"], "cash": 10000, "commission": 0.001, "from": "2017-07-01", "to": "2017-09-01"}))
write('edge_task_params', 'backtest-files', json.dumps({"models": ["technical"], "profiles": bt[0], "accounts": bt[1], "llm_config": "[rules]\nrsi_oversold = 25.0\n", "interval": "4h", "aggregate": ["1h:4h"]}))
write('edge_task_params', 'hyperopt', json.dumps({"space": '[param]\n"rules.sma_cross.fast" = { int = [5, 50] }\n"rules.rsi_oversold" = { float = [20.0, 35.0] }\n', "method": "tpe", "trials": 20, "seed": 7, "walk_forward": 3, "test_fraction": 0.25, "top": 5}))
write('edge_task_params', 'train', json.dumps({"name": "ml:trend_1h", "family": "logistic", "horizon": 4, "threshold": 0.002, "seed": 1, "train_share": 0.7, "validation_share": 0.15, "folds": 3}))
write('edge_task_params', 'download', json.dumps({"symbol": "BTCUSDT", "interval": "1h", "from": 1672531200000, "to": 1675209600000}))
