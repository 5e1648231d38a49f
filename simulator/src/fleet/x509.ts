// @peculiar/x509 needs the Reflect metadata API when it loads: import it only through this module.
import 'reflect-metadata';

export * from '@peculiar/x509';
