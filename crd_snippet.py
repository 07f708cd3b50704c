RESPONSE = '''{ind}response:
{ind}  description: >-
{ind}    {desc}
{ind}  type: object
{ind}  properties:
{ind}    statusCode:
{ind}      description: The status code.
{ind}      type: integer
{ind}      minimum: 200
{ind}      maximum: 599
{ind}      default: 503
{ind}    headers:
{ind}      description: >-
{ind}        Response headers, sent as written. Absent: none. Content-Type defaults to
{ind}        text/plain; charset=utf-8, and a 503 gets Retry-After: 60 unless set here;
{ind}        Content-Length, Cache-Control (always no-store) and the connection headers are
{ind}        the interceptor's own.
{ind}      type: object
{ind}      maxProperties: 32
{ind}      additionalProperties:
{ind}        type: string
{ind}        maxLength: 4096
{ind}      x-kubernetes-validations:
{ind}        - rule: "self.all(k, k.matches('^[-!#$%&*+.^_`|~0-9A-Za-z\\\\x27]+$'))"
{ind}          message: every key must be an HTTP header name (an RFC 9110 token)
{ind}          reason: FieldValueInvalid
{ind}        - rule: >-
{ind}            self.all(k, !(k.lowerAscii() in ['content-length', 'transfer-encoding',
{ind}            'connection', 'keep-alive', 'upgrade', 'trailer', 'cache-control']))
{ind}          message: >-
{ind}            Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, Trailer
{ind}            and Cache-Control are set by the interceptor itself
{ind}          reason: FieldValueForbidden
{ind}    body:
{ind}      description: The response body.
{ind}      type: string
{ind}      maxLength: 65536
{ind}      default: {body}
'''
ind = " " * 22
wake = '''                wakeExclusions:
                  description: >-
                    "wakeway: requests that never wake the workload and never count as activity
                    (bots, uptime checks, load balancer probes). While the workload has no ready
                    endpoint a matching request gets the entry's response; while it has one the
                    request is forwarded (responseMode WhenUnavailable) or answered all the same
                    (Always). The first matching entry wins. Each entry is one rule of the KEDA
                    HTTP add-on's staticRoutes. See docs/wake-exclusions.md."
                  type: array
                  maxItems: 32
                  x-kubernetes-list-type: atomic
                  items:
                    type: object
                    x-kubernetes-validations:
                      - rule: has(self.paths) || has(self.methods) || has(self.headers) || has(self.userAgent)
                        message: must set at least one of paths, methods, headers and userAgent
                        reason: FieldValueRequired
                    properties:
                      paths:
                        description: >-
                          The request path must match one of these; absent: any path.
                        type: array
                        maxItems: 16
                        x-kubernetes-list-type: atomic
                        items:
                          type: object
                          required:
                            - value
                          properties:
                            type:
                              description: >-
                                Exact (the whole path) or PathPrefix (element by element: /api
                                matches /api and /api/x, not /apix).
                              type: string
                              enum:
                                - Exact
                                - PathPrefix
                              default: PathPrefix
                            value:
                              type: string
                              maxLength: 1024
                              x-kubernetes-validations:
                                - rule: self.matches('^/[^?#\\\\s]*$')
                                  message: must start with '/' and have no query or fragment
                                  reason: FieldValueInvalid
                      methods:
                        description: The request method must be one of these; absent: any.
                        type: array
                        maxItems: 16
                        x-kubernetes-list-type: set
                        items:
                          type: string
                          maxLength: 32
                          pattern: '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$'
                      headers:
                        description: >-
                          Headers that must all be present; with a value, the value must be
                          equal. Names are compared case-insensitively.
                        type: array
                        maxItems: 16
                        x-kubernetes-list-type: atomic
                        items:
                          type: object
                          required:
                            - name
                          properties:
                            name:
                              type: string
                              maxLength: 256
                              pattern: '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$'
                            value:
                              type: string
                              maxLength: 4096
                      userAgent:
                        description: >-
                          An RE2 regular expression the User-Agent header must contain a match
                          of (anchor it with ^ and $ to match the whole value; (?i) ignores
                          case). A request without User-Agent does not match. The API server
                          cannot check RE2 syntax: a bad expression makes the object
                          Ready=False, naming this field.
                        type: string
                        minLength: 1
                        maxLength: 1024
''' + RESPONSE.format(ind=ind, desc="What a matching request gets instead of waking the workload.", body='"The service is asleep; this request does not wake it.\\n"') + '''                      responseMode:
                        description: >-
                          WhenUnavailable: forwarded while the workload has a ready endpoint
                          (not counted), answered with response otherwise. Always: answered
                          with response whatever the workload's state.
                        type: string
                        enum:
                          - WhenUnavailable
                          - Always
                        default: WhenUnavailable
                maintenance:
                  description: >-
                    "wakeway: answer every request with response, waking and forwarding nothing,
                    and counting nothing as activity. Absent: off; present: on unless enabled is
                    false. Shown as the Maintenance condition."
                  type: object
                  properties:
                    enabled:
                      type: boolean
                      default: true
''' + RESPONSE.format(ind=" " * 20, desc="The maintenance page.", body='"The service is down for maintenance; please retry later.\\n"')
import sys
p = 'crds/http.keda.sh_httpscaledobjects.yaml'
s = open(p).read()
anchor = '''            status:
              description: What the operator found and did; written only by the operator.'''
assert s.count(anchor) == 1
s = s.replace(anchor, wake + anchor)
open(p, 'w').write(s)
