#!/usr/bin/env node
// Reference outputs of a TensorFlow.js graph model, computed by @tensorflow/tfjs itself (CPU backend).
//
//   NODE_PATH=<folder holding @tensorflow/tfjs> node scripts/tfjs_reference.js MODEL.json INPUT.f32 N,H,W,C OUT.json
//
// INPUT.f32 is raw little-endian float32 NHWC (what the model's input placeholder takes, preprocessing already
// applied); OUT.json gets {"outputs": {node name: {"shape": [...], "data": [...]}}, "tfjs": version, "backend"}.
// Used by scripts/make_tfjs_fixture.py (the committed fixtures) and tests/unit/test_tfjs_reader.py (when node and
// tfjs are there).
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function handler(modelPath) {
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), p)));
      }
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: model.modelTopology, weightSpecs: specs, weightData, format: model.format,
        generatedBy: model.generatedBy, convertedBy: model.convertedBy, signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
      };
    },
  };
}

async function main() {
  const [modelPath, inputPath, shapeText, outPath, outputsText] = process.argv.slice(2);
  if (!outPath) {
    process.stderr.write('usage: tfjs_reference.js MODEL.json INPUT.f32 N,H,W,C OUT.json [OUTPUT1,OUTPUT2]\n');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(handler(modelPath));
  const shape = shapeText.split(',').map(Number);
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const input = tf.tensor(data, shape, 'float32');
  const names = outputsText ? outputsText.split(',') : model.outputNodes;
  let results = model.execute(input, names);
  if (!Array.isArray(results)) results = [results];
  const outputs = {};
  names.forEach((name, i) => {
    outputs[name.split(':')[0]] = { shape: results[i].shape, data: Array.from(results[i].dataSync()) };
  });
  fs.writeFileSync(outPath, JSON.stringify({ outputs, tfjs: tf.version.tfjs, backend: tf.getBackend() }));
}

main().catch((err) => { process.stderr.write(`tfjs_reference: ${err.message}\n`); process.exit(1); });
