import { createContext, useContext } from "react";
import { Api } from "./lib/api";
import { Session } from "./lib/session";

export interface Services {
  session: Session;
  api: Api;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error("ServicesContext missing");
  return s;
}
