// `react` for pages without a bundler: React 18's UMD build (loaded by a
// <script> before the modules) as an ES module.
const React = window.React;
export default React;
export const { useState, useEffect, useRef, useMemo, useCallback, createElement } = React;
