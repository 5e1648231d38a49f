// @peculiar/x509 (through tsyringe) needs the Reflect metadata API when it loads. Import the
// library only through this module: the polyfill is imported first, so it is in place before
// @peculiar/x509 is evaluated, whatever else imports it.
import 'reflect-metadata';

export * from '@peculiar/x509';
