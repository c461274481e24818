// Tests import modules below the entry point: install Node's platform seams as src/index.ts does.
import "../src/platform/node.js";
