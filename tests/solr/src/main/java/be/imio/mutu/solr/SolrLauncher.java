package be.imio.mutu.solr;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.solr.cloud.ZkTestServer;
import org.apache.solr.common.cloud.SolrZkClient;
import org.apache.solr.common.util.Utils;
import org.apache.solr.embedded.JettyConfig;
import org.apache.solr.embedded.JettySolrRunner;
import org.apache.solr.security.Sha256AuthenticationProvider;
import sun.misc.Signal;

/**
 * Starts a small SolrCloud (an embedded ZooKeeper and N Jetty/Solr nodes) on 127.0.0.1, with
 * BasicAuth and rule-based authorization, and keeps it running in the foreground until SIGTERM.
 *
 * <p>Built only from Maven Central artifacts (solr-test-framework's JettySolrRunner and
 * ZkTestServer, used directly rather than through MiniSolrCloudCluster so that a data directory
 * survives restarts). See tests/solr/README.md.
 *
 * <pre>
 * SolrLauncher --data-dir DIR [--port 8983] [--nodes 1] [--zk-port PORT+1000]
 * admin password: $SOLR_ADMIN_PASSWORD or the file named by $SOLR_ADMIN_PASSWORD_FILE
 * admin user: $SOLR_ADMIN_USER (default admin)
 * </pre>
 */
public final class SolrLauncher {

  /** The solr.xml of every node: the cloud defaults of Solr 9 with the host pinned to loopback. */
  static final String SOLR_XML =
      "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n"
          + "<solr>\n"
          + "  <str name=\"coreRootDirectory\">${coreRootDirectory:.}</str>\n"
          + "  <str name=\"sharedLib\">${solr.sharedLib:}</str>\n"
          + "  <str name=\"allowPaths\">${solr.allowPaths:}</str>\n"
          + "  <str name=\"allowUrls\">${solr.allowUrls:}</str>\n"
          + "  <solrcloud>\n"
          + "    <str name=\"host\">127.0.0.1</str>\n"
          + "    <int name=\"hostPort\">${hostPort:8983}</int>\n"
          + "    <str name=\"hostContext\">${hostContext:solr}</str>\n"
          + "    <bool name=\"genericCoreNodeNames\">true</bool>\n"
          + "    <int name=\"zkClientTimeout\">${zkClientTimeout:30000}</int>\n"
          + "    <int name=\"leaderVoteWait\">${leaderVoteWait:10000}</int>\n"
          + "    <int name=\"distribUpdateSoTimeout\">${distribUpdateSoTimeout:600000}</int>\n"
          + "    <int name=\"distribUpdateConnTimeout\">${distribUpdateConnTimeout:60000}</int>\n"
          + "  </solrcloud>\n"
          + "  <shardHandlerFactory name=\"shardHandlerFactory\" class=\"HttpShardHandlerFactory\">\n"
          + "    <int name=\"socketTimeout\">${socketTimeout:600000}</int>\n"
          + "    <int name=\"connTimeout\">${connTimeout:60000}</int>\n"
          + "  </shardHandlerFactory>\n"
          + "  <metrics enabled=\"${metricsEnabled:false}\"/>\n"
          + "</solr>\n";

  private final Path dataDir;
  private final int port;
  private final int nodes;
  private final int zkPort;
  private final String adminUser;
  private final String adminPassword;

  private volatile ZkTestServer zk;
  private final AtomicBoolean shutdownStarted = new AtomicBoolean();
  private final List<JettySolrRunner> jettys = new ArrayList<>();

  private SolrLauncher(
      Path dataDir, int port, int nodes, int zkPort, String adminUser, String adminPassword) {
    this.dataDir = dataDir;
    this.port = port;
    this.nodes = nodes;
    this.zkPort = zkPort;
    this.adminUser = adminUser;
    this.adminPassword = adminPassword;
  }

  public static void main(String[] args) throws Exception {
    Path dataDir = null;
    int port = 8983;
    int nodes = 1;
    int zkPort = -1;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--data-dir":
          dataDir = Path.of(args[++i]);
          break;
        case "--port":
          port = Integer.parseInt(args[++i]);
          break;
        case "--nodes":
          nodes = Integer.parseInt(args[++i]);
          break;
        case "--zk-port":
          zkPort = Integer.parseInt(args[++i]);
          break;
        case "-h":
        case "--help":
          usage(null);
          return;
        default:
          usage("unknown argument: " + a);
      }
    }
    if (dataDir == null) usage("--data-dir is required");
    if (nodes < 1) usage("--nodes must be at least 1");
    if (zkPort < 0) zkPort = port + 1000;

    String user = envOr("SOLR_ADMIN_USER", "admin");
    String password = System.getenv("SOLR_ADMIN_PASSWORD");
    String passwordFile = System.getenv("SOLR_ADMIN_PASSWORD_FILE");
    if ((password == null || password.isEmpty()) && passwordFile != null) {
      password = Files.readString(Path.of(passwordFile), StandardCharsets.UTF_8).strip();
    }
    if (password == null || password.isEmpty()) {
      usage("set SOLR_ADMIN_PASSWORD or SOLR_ADMIN_PASSWORD_FILE");
    }

    SolrLauncher launcher =
        new SolrLauncher(dataDir.toAbsolutePath(), port, nodes, zkPort, user, password);
    launcher.run();
  }

  private static void usage(String error) {
    String text =
        "usage: SolrLauncher --data-dir DIR [--port 8983] [--nodes 1] [--zk-port PORT+1000]\n"
            + "  nodes listen on 127.0.0.1:PORT, PORT+1, ...; ZooKeeper on 127.0.0.1:ZK_PORT\n"
            + "  admin password from $SOLR_ADMIN_PASSWORD or the file $SOLR_ADMIN_PASSWORD_FILE;"
            + " user $SOLR_ADMIN_USER (default admin)";
    if (error == null) {
      System.out.println(text);
      return;
    }
    System.err.println("solr-launcher: " + error);
    System.err.println(text);
    System.exit(2);
  }

  private static String envOr(String name, String dflt) {
    String v = System.getenv(name);
    return v == null || v.isEmpty() ? dflt : v;
  }

  private void run() throws Exception {
    long t0 = System.nanoTime();
    // Every way out goes through System.exit and so through this hook, which stops the nodes and
    // then ZooKeeper. SIGTERM and SIGINT exit with status 0.
    Runtime.getRuntime().addShutdownHook(new Thread(this::shutdown, "solr-launcher-shutdown"));
    for (String sig : new String[] {"TERM", "INT"}) {
      Signal.handle(
          new Signal(sig), s -> new Thread(() -> System.exit(0), "solr-launcher-exit").start());
    }

    try {
      start();
    } catch (Throwable t) {
      System.err.println("solr-launcher: start-up failed: " + t);
      t.printStackTrace();
      System.exit(1);
    }
    if (shutdownStarted.get()) return; // a signal came during start-up
    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
    System.out.printf(
        "SOLR READY url=http://127.0.0.1:%d/solr zk=%s nodes=%d pid=%d startup_ms=%d%n",
        port, zk.getZkAddress(), nodes, ProcessHandle.current().pid(), ms);
    System.out.flush();
    new CountDownLatch(1).await(); // until System.exit
  }

  private void start() throws Exception {
    Files.createDirectories(dataDir);
    // ZooKeeper keeps its data in DATA_DIR/zookeeper; run(false) does not wipe /solr, so a
    // restart on the same data directory finds its collections, configsets and users again.
    Path zkDir = dataDir.resolve("zookeeper");
    Files.createDirectories(zkDir);
    zk = new ZkTestServer(zkDir, zkPort);
    zk.run(false);
    log("zookeeper listening on " + zk.getZkHost());
    zk.ensurePathExists("/solr");
    writeSecurityJson();

    JettyConfig base =
        JettyConfig.builder()
            .setContext("/solr")
            .stopAtShutdown(false) // our shutdown hook stops Jetty, then ZooKeeper
            .withPortRetryTime(0) // fail at once when the port is taken
            .withSSLConfig(null)
            .build();
    List<Future<JettySolrRunner>> started = new ArrayList<>();
    ExecutorService pool = Executors.newFixedThreadPool(nodes);
    try {
      for (int i = 1; i <= nodes; i++) {
        final int n = i;
        started.add(pool.submit(() -> startNode(n, base)));
      }
      for (Future<JettySolrRunner> f : started) f.get();
    } finally {
      pool.shutdown();
    }
    waitForLiveNodes();
    for (JettySolrRunner j : jettys) waitForHealth(j.getLocalPort());
  }

  private JettySolrRunner startNode(int n, JettyConfig base) throws Exception {
    Path home = dataDir.resolve("node" + n);
    Files.createDirectories(home);
    Files.writeString(home.resolve("solr.xml"), SOLR_XML, StandardCharsets.UTF_8);
    Properties props = new Properties();
    props.setProperty("zkHost", zk.getZkAddress());
    JettySolrRunner jetty =
        new JettySolrRunner(
            home.toString(), props, JettyConfig.builder(base).setPort(port + n - 1).build());
    synchronized (jettys) {
      jettys.add(jetty);
    }
    jetty.start();
    log("node" + n + " listening on " + jetty.getBaseUrl());
    return jetty;
  }

  /**
   * Writes /solr/security.json on the first start. On later starts the file is kept (users and
   * permissions added through the APIs survive) and only the admin's password is set again from the
   * environment, and the admin role given back to it.
   */
  @SuppressWarnings("unchecked")
  private void writeSecurityJson() throws Exception {
    try (SolrZkClient client =
        new SolrZkClient.Builder()
            .withUrl(zk.getZkAddress())
            .withTimeout(30000, TimeUnit.MILLISECONDS)
            .build()) {
      String path = "/security.json";
      Map<String, Object> security;
      boolean exists = client.exists(path, true);
      if (exists) {
        byte[] data = client.getData(path, null, null, true);
        security = (Map<String, Object>) Utils.fromJSON(data);
      } else {
        security = initialSecurity();
      }
      Map<String, Object> authc =
          (Map<String, Object>) security.computeIfAbsent("authentication", k -> new LinkedHashMap<>());
      Map<String, Object> creds =
          (Map<String, Object>) authc.computeIfAbsent("credentials", k -> new LinkedHashMap<>());
      creds.put(adminUser, Sha256AuthenticationProvider.getSaltedHashedValue(adminPassword));
      Map<String, Object> authz =
          (Map<String, Object>) security.computeIfAbsent("authorization", k -> new LinkedHashMap<>());
      Map<String, Object> userRole =
          (Map<String, Object>) authz.computeIfAbsent("user-role", k -> new LinkedHashMap<>());
      Object roles = userRole.get(adminUser);
      if (roles == null || !(roles.equals("admin") || (roles instanceof List && ((List<?>) roles).contains("admin")))) {
        userRole.put(adminUser, List.of("admin"));
      }
      byte[] json = Utils.toJSON(security);
      if (exists) {
        client.setData(path, json, true);
      } else {
        client.makePath(path, json, true);
      }
      log((exists ? "updated" : "wrote") + " security.json (admin user " + adminUser + ")");
    }
  }

  private static Map<String, Object> initialSecurity() {
    Map<String, Object> authc = new LinkedHashMap<>();
    authc.put("class", "solr.BasicAuthPlugin");
    authc.put("blockUnknown", true);
    authc.put("forwardCredentials", false);
    authc.put("realm", "mutu-solr");
    authc.put("credentials", new LinkedHashMap<String, Object>());

    Map<String, Object> all = new LinkedHashMap<>();
    all.put("name", "all");
    all.put("role", "admin");
    Map<String, Object> authz = new LinkedHashMap<>();
    authz.put("class", "solr.RuleBasedAuthorizationPlugin");
    authz.put("user-role", new LinkedHashMap<String, Object>());
    authz.put("permissions", new ArrayList<>(List.of(all)));

    Map<String, Object> security = new LinkedHashMap<>();
    security.put("authentication", authc);
    security.put("authorization", authz);
    return security;
  }

  private void waitForLiveNodes() throws Exception {
    try (SolrZkClient client =
        new SolrZkClient.Builder()
            .withUrl(zk.getZkAddress())
            .withTimeout(30000, TimeUnit.MILLISECONDS)
            .build()) {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (true) {
        List<String> live = client.getChildren("/live_nodes", null, true);
        if (live.size() >= nodes) return;
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("only " + live.size() + " of " + nodes + " nodes live");
        }
        Thread.sleep(100);
      }
    }
  }

  /** Waits until the node answers its health check, as the admin, with HTTP 200. */
  private void waitForHealth(int nodePort) throws Exception {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    String auth =
        Base64.getEncoder()
            .encodeToString((adminUser + ":" + adminPassword).getBytes(StandardCharsets.UTF_8));
    HttpRequest req =
        HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + nodePort + "/solr/admin/info/health?wt=json"))
            .header("Authorization", "Basic " + auth)
            .timeout(Duration.ofSeconds(10))
            .build();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    String last = "";
    while (System.nanoTime() < deadline) {
      try {
        HttpResponse<String> rsp = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (rsp.statusCode() == 200) return;
        last = "HTTP " + rsp.statusCode() + " " + rsp.body();
      } catch (IOException e) {
        last = e.toString();
      }
      Thread.sleep(200);
    }
    throw new IllegalStateException("node on port " + nodePort + " not healthy: " + last);
  }

  private void shutdown() {
    if (!shutdownStarted.compareAndSet(false, true)) return;
    long t0 = System.nanoTime();
    log("stopping");
    Thread watchdog =
        new Thread(
            () -> {
              try {
                Thread.sleep(90_000);
              } catch (InterruptedException e) {
                return;
              }
              System.err.println("solr-launcher: not stopped after 90 s, halting");
              Runtime.getRuntime().halt(1);
            },
            "solr-launcher-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    List<JettySolrRunner> toStop;
    synchronized (jettys) {
      toStop = new ArrayList<>(jettys);
    }
    List<Thread> stoppers = new ArrayList<>();
    for (JettySolrRunner j : toStop) {
      Thread t =
          new Thread(
              () -> {
                try {
                  j.stop();
                } catch (Throwable e) {
                  System.err.println("solr-launcher: stopping a node: " + e);
                }
              },
              "solr-launcher-stop-node");
      t.start();
      stoppers.add(t);
    }
    for (Thread t : stoppers) {
      try {
        t.join(60000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (zk != null) {
      try {
        zk.shutdown();
      } catch (Throwable e) {
        System.err.println("solr-launcher: stopping ZooKeeper: " + e);
      }
    }
    log("stopped in " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms");
  }

  private static void log(String msg) {
    System.out.println("solr-launcher: " + msg);
    System.out.flush();
  }
}
