// Types of the page's word tables (i18n.js is a plain module served as is; tests read it from TypeScript).
export declare const LANGS: readonly string[];
export declare const TEXT: Record<string, Record<string, string>>;
export declare const REASONS: Record<string, Record<string, string>>;
export declare function t(lang: string, key: string, vars?: Record<string, unknown>): string;
export declare function reason(lang: string, code: string): string;
